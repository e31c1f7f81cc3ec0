package clienttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
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
		if raw, ok := binaryLogin(proto); ok {
			// Binary and stream protocols: one login message, and whatever
			// comes back is enough.
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(raw); err != nil {
				return err
			}
			_, err = c.Read(make([]byte, 512))
			_ = c.Quit(ctx)
			return err
		}
		ct := loginOf(proto)
		if ct == nil || ct.LoginLine == "" {
			return fmt.Errorf("no login command for %s", proto)
		}
		login := ct.LoginLine
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte(login + "\r\n")); err != nil {
			return err
		}
		_, err = c.ReadLine()
		_ = c.Quit(ctx)
		return err
	}
}

// loginOf is the ClientTest whose login LibraryClient sends for proto.
func loginOf(proto starttls.Protocol) *registry.ClientTest {
	base, err := baseOf(proto)
	if err != nil {
		return nil
	}
	return clientTestOf(base)
}

// binaryLogin is the first message a client of proto sends inside TLS
// with credentials in it, for protocols that are not a line per command.
func binaryLogin(proto starttls.Protocol) ([]byte, bool) {
	if ct := loginOf(proto); ct != nil && ct.LoginRaw != nil {
		return ct.LoginRaw, true
	}
	return nil, false
}
