package check

import (
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// fakePostgres answers SSLRequest with 'S' and then, inside TLS, either
// processes a startup message the client pipelined in plaintext (the
// CVE-2021-23214 flaw: AuthenticationOk) or refuses it as PostgreSQL does
// since the fix (ErrorResponse 08P01).
func fakePostgres(t *testing.T, cfg *tls.Config, vulnerable bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for i := 0; i < 200; i++ {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				req := make([]byte, 8)
				if _, err := io.ReadFull(c, req); err != nil {
					return
				}
				// Whatever followed SSLRequest in the same segment.
				_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
				extra := make([]byte, 512)
				n, _ := c.Read(extra)
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte{'S'}); err != nil {
					return
				}
				tc := tls.Server(c, cfg)
				if tc.Handshake() != nil || n == 0 {
					if tc != nil {
						io.Copy(io.Discard, tc)
					}
					return
				}
				if vulnerable {
					tc.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 0})
				} else {
					msg := "SFATAL\x00C08P01\x00Mreceived unencrypted data after SSL request\x00\x00"
					l := len(msg) + 4
					tc.Write(append([]byte{'E', byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)}, msg...))
				}
				io.Copy(io.Discard, tc)
			}()
		}
	}()
	return l.Addr().String()
}

// The binary injection probe tells a server that executes the pipelined
// startup message from one that notices it and refuses inside TLS.
func TestBinaryInjectionProbePostgres(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, vulnerable := range []bool{true, false} {
		addr := fakePostgres(t, pki.server(), vulnerable)
		r := checkAddr(t, starttls.Postgres, addr, pki.ca.Pool(), func(o *Options) { o.Depth = Quick })
		verdict := r.StartTLS.Probes["command-injection"]
		if vulnerable {
			requireFinding(t, r, "command-injection", true)
		} else {
			requireFinding(t, r, "command-injection", false)
			if !strings.Contains(verdict, "refused inside TLS") || !strings.Contains(verdict, "received unencrypted data") {
				t.Errorf("verdict %q", verdict)
			}
		}
	}
}
