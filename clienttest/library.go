package clienttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"os"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/ldap"
	"github.com/starttls-go/starttls/internal/proto/mysql"
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

// binaryLogin is the first message a client of proto sends inside TLS
// with credentials in it.
func binaryLogin(proto starttls.Protocol) ([]byte, bool) {
	switch proto {
	case starttls.Postgres:
		body := binary.BigEndian.AppendUint32(nil, 3<<16)
		body = append(body, "user\x00user\x00database\x00db\x00\x00"...)
		return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...), true
	case starttls.MySQL:
		caps := mysql.ClientProtocol41 | mysql.ClientSecureConnection | mysql.ClientSSL
		p := binary.LittleEndian.AppendUint32(nil, caps)
		p = binary.LittleEndian.AppendUint32(p, 1<<24)
		p = append(p, 45)
		p = append(p, make([]byte, 23)...)
		p = append(p, "user\x00\x00"...)
		return mysql.Packet(2, p), true
	case starttls.LDAP:
		b := cryptobyte.NewBuilder(nil)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(2)
			b.AddASN1(cbasn1.Tag(0x40|ldap.BindRequest).Constructed(), func(b *cryptobyte.Builder) {
				b.AddASN1Int64(3)
				b.AddASN1OctetString([]byte("cn=user"))
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("secret")) })
			})
		})
		return b.BytesOrPanic(), true
	case starttls.XMPP:
		return []byte("<auth xmlns='" + nsXMPPSASL + "' mechanism='PLAIN'>" +
			base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret")) + "</auth>"), true
	case starttls.IRC:
		return []byte("PASS secret\r\nNICK user\r\nUSER user 0 * :user\r\nCAP END\r\n"), true
	case starttls.HTTP:
		return []byte("GET / HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic " +
			base64.StdEncoding.EncodeToString([]byte("user:secret")) + "\r\n\r\n"), true
	}
	return nil, false
}
