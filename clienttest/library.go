package clienttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"os"
	"time"

	"github.com/starttls-go/starttls"
)

// LibraryClient is this module's own client as a test subject: it
// upgrades with default (strict) settings and, only once inside TLS,
// logs in the way a mail client would.
func LibraryClient(proto starttls.Protocol) func(ctx context.Context, addr, caFile string) error {
	return func(ctx context.Context, addr, caFile string) error {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		cfg := &starttls.Config{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}, PhaseTimeout: 5 * time.Second}
		c, err := starttls.Dial(ctx, proto, addr, cfg)
		if err != nil {
			return err
		}
		defer c.Close()
		login := map[starttls.Protocol]string{
			starttls.SMTP:       "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret")),
			starttls.Submission: "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret")),
			starttls.IMAP:       "L1 LOGIN user secret",
			starttls.POP3:       "USER user",
			starttls.FTP:        "USER user",
			starttls.NNTP:       "AUTHINFO USER user",
			starttls.Sieve:      `AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret")) + `"`,
		}[proto]
		if login == "" {
			return fmt.Errorf("no login command for %s", proto)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(login + "\r\n")); err != nil {
			return err
		}
		_, err = c.ReadLine()
		_ = c.Quit(ctx)
		return err
	}
}
