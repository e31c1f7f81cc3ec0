package starttls_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// The server half issues session tickets that a later connection can
// resume, in TLS 1.2 and 1.3: the ticket keys belong to the server's
// configuration, not to one connection.
func TestServerTicketsResume(t *testing.T) {
	pki := newPKI(t)
	for _, maxVersion := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(maxVersion), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			srv := &starttls.ServerConfig{TLSConfig: pki.Server}
			go func() {
				for range 2 {
					conn, err := l.Accept()
					if err != nil {
						return
					}
					c, err := starttls.Accept(ctx, conn, starttls.SMTP, srv)
					if err != nil {
						t.Errorf("server: %v", err)
						conn.Close()
						continue
					}
					postTLSCaps(t, c)
					c.Close()
				}
			}()
			client := pki.Client.Clone()
			client.MaxVersion = maxVersion
			client.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			var resumed []bool
			for range 2 {
				c, err := starttls.Dial(ctx, starttls.SMTP, l.Addr().String(), &starttls.Config{TLSConfig: client})
				if err != nil {
					t.Fatalf("dial: %v", err)
				}
				resumed = append(resumed, c.ConnectionState().DidResume)
				c.Close()
			}
			if resumed[0] || !resumed[1] {
				t.Errorf("resumed %v, want [false true]", resumed)
			}
		})
	}
}
