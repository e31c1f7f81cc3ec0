package check

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/serve"
)

// fakeHTTPUpgrade is an RFC 2817 server that answers the upgrading
// OPTIONS inside TLS with a body (which must not be taken for a second
// response); vulnerable, it then answers a request the client pipelined
// in plaintext behind the upgrade request, read from the buffer that
// should have been dropped.
func fakeHTTPUpgrade(t *testing.T, cfg *tls.Config, vulnerable bool) string {
	t.Helper()
	head := func(br *bufio.Reader) bool {
		for i := 0; i < 50; i++ {
			line, err := br.ReadString('\n')
			if err != nil {
				return false
			}
			if strings.TrimRight(line, "\r\n") == "" {
				return true
			}
		}
		return false
	}
	return loopback.Serve(t, 10*time.Second, func(c net.Conn) {
		br := bufio.NewReader(c)
		if !head(br) {
			return
		}
		if _, err := io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"); err != nil {
			return
		}
		pending, _ := br.Peek(br.Buffered())
		pending = append([]byte(nil), pending...)
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		_, _ = io.WriteString(tc, "HTTP/1.1 200 OK\r\nAllow: OPTIONS, GET\r\nContent-Length: 7\r\n\r\nhello\r\n")
		if vulnerable && len(pending) > 0 && head(bufio.NewReader(strings.NewReader(string(pending)))) {
			_, _ = io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}
		_, _ = io.Copy(io.Discard, tc)
	})
}

// TestHTTPInjection: a request pipelined behind the RFC 2817 upgrade
// request and answered inside TLS is command injection; the body of the
// upgrade's own response is not; the library's server half with the
// embedded server's application (net/http) passes.
func TestHTTPInjection(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	quick := func(o *Options) { o.Depth = Quick }
	for _, tc := range []struct {
		name string
		addr func() string
		vuln bool
	}{
		{"answers the pipelined request", func() string { return fakeHTTPUpgrade(t, pki.server(), true) }, true},
		{"drops it", func() string { return fakeHTTPUpgrade(t, pki.server(), false) }, false},
		{"library server half", func() string {
			return startHalf(t, starttls.HTTP, starttls.ServerConfig{TLSConfig: pki.server()}, func(ctx context.Context, c *starttls.Conn) {
				defer c.Close()
				serve.ServeConn(ctx, c, serve.Options{IdleTimeout: 5 * time.Second})
			})
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkAddr(t, starttls.HTTP, tc.addr(), pki.ca.Pool(), quick)
			if r.Status != starttls.StatusSuccess {
				t.Fatalf("status %s: %s", r.Status, r.Error)
			}
			requireFinding(t, r, "command-injection", tc.vuln)
			v := r.StartTLS.Probes["command-injection"]
			if tc.vuln != (v == "fail") {
				t.Errorf("verdict %q", v)
			}
			for _, f := range r.Findings {
				if f.ID == "command-injection" && !strings.Contains(f.Evidence, "HTTP/1.1 200 OK") {
					t.Errorf("evidence %q", f.Evidence)
				}
				t.Logf("%s: %s", f.ID, f.Evidence)
			}
		})
	}
}
