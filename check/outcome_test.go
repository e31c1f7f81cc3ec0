package check

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
)

// scriptedServer accepts connections and runs script on each, with a hard
// deadline so that no test server outlives its test.
func scriptedServer(t *testing.T, script func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	return loopback.Serve(t, 5*time.Second, func(c net.Conn) { script(c, bufio.NewReader(c)) })
}

// wait holds the connection open until the client leaves or the deadline passes.
func wait(_ net.Conn, br *bufio.Reader) { _, _ = br.WriteTo(discardWriter{}) }

type discardWriter struct{}

func (discardWriter) Write(b []byte) (int, error) { return len(b), nil }

var outcomeIDs = []string{"connect-failed", "no-greeting", "timeout", "protocol-error", "connection-closed"}

// Every way the main session can fail without TLS is a finding with its
// own id and status, reached within the phase timeout.
func TestOutcomeFindings(t *testing.T) {
	ehlo := func(c net.Conn, br *bufio.Reader) bool {
		if _, err := c.Write([]byte("220 fake.test ESMTP\r\n")); err != nil {
			return false
		}
		if _, err := br.ReadString('\n'); err != nil {
			return false
		}
		_, err := c.Write([]byte("250-fake.test\r\n250 STARTTLS\r\n"))
		return err == nil
	}
	cases := []struct {
		name   string
		addr   func(t *testing.T) string
		id     string
		status starttls.Status
		shown  string // what the report's dialogue must hold
	}{
		{"silent", func(t *testing.T) string { return scriptedServer(t, wait) }, "no-greeting", starttls.StatusTimeout, ""},
		{"closes at once", func(t *testing.T) string {
			return scriptedServer(t, func(net.Conn, *bufio.Reader) {})
		}, "no-greeting", starttls.StatusClosed, ""},
		{"endless line", func(t *testing.T) string {
			return scriptedServer(t, func(c net.Conn, br *bufio.Reader) {
				chunk := []byte(strings.Repeat("2", 64<<10))
				for i := 0; i < 1600; i++ { // 100 MB at most
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			})
		}, "protocol-error", starttls.StatusProtocol, ""},
		{"garbage greeting", func(t *testing.T) string {
			return scriptedServer(t, func(c net.Conn, br *bufio.Reader) {
				_, _ = c.Write([]byte("SSH-2.0-OpenSSH_9.2\r\n"))
				wait(c, br)
			})
		}, "protocol-error", starttls.StatusProtocol, "SSH-2.0-OpenSSH_9.2"},
		{"binary noise", func(t *testing.T) string {
			return scriptedServer(t, func(c net.Conn, br *bufio.Reader) {
				_, _ = c.Write([]byte("\x00\x01\xff noise\r\n"))
				wait(c, br)
			})
		}, "protocol-error", starttls.StatusProtocol, `\x00\x01\xff noise`},
		{"half a greeting then silence", func(t *testing.T) string {
			return scriptedServer(t, func(c net.Conn, br *bufio.Reader) {
				_, _ = c.Write([]byte("220 fake.te"))
				wait(c, br)
			})
		}, "timeout", starttls.StatusTimeout, ""},
		{"stalls after EHLO", func(t *testing.T) string {
			return scriptedServer(t, func(c net.Conn, br *bufio.Reader) {
				_, _ = c.Write([]byte("220 fake.test ESMTP\r\n"))
				wait(c, br)
			})
		}, "timeout", starttls.StatusTimeout, "220 fake.test ESMTP"},
		{"closes after greeting", func(t *testing.T) string {
			return scriptedServer(t, func(c net.Conn, br *bufio.Reader) {
				_, _ = c.Write([]byte("220 fake.test ESMTP\r\n"))
				_, _ = br.ReadString('\n')
			})
		}, "connection-closed", starttls.StatusClosed, "220 fake.test ESMTP"},
		{"closes after STARTTLS", func(t *testing.T) string {
			return scriptedServer(t, func(c net.Conn, br *bufio.Reader) {
				if ehlo(c, br) {
					_, _ = br.ReadString('\n')
				}
			})
		}, "connection-closed", starttls.StatusClosed, "STARTTLS"},
		{"refused connection", func(t *testing.T) string { return loopback.UnusedAddr(t) }, "connect-failed", starttls.StatusConnectRefused, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := checkAddr(t, starttls.SMTP, tc.addr(t), nil, func(o *Options) { o.Timeout = 400 * time.Millisecond })
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v", d)
			}
			if r.Status != tc.status {
				t.Errorf("status %s, want %s (%s)", r.Status, tc.status, r.Error)
			}
			for _, id := range outcomeIDs {
				requireFinding(t, r, id, id == tc.id)
			}
			if r.Grade != "F" || r.Error == "" {
				t.Errorf("grade %s, error %q", r.Grade, r.Error)
			}
			if tc.shown != "" {
				var lines []string
				for _, e := range r.StartTLS.Transcript {
					lines = append(lines, e.Text)
				}
				if all := strings.Join(lines, "\n"); !strings.Contains(all, tc.shown) {
					t.Errorf("transcript %q lacks %q", all, tc.shown)
				}
			}
		})
	}
}

// The negative control: a correct server has none of the outcome findings.
func TestOutcomeFindingsClean(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: pki.server()})
	r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool(), func(o *Options) { o.Depth = Session })
	if r.Status != starttls.StatusSuccess {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	for _, id := range outcomeIDs {
		requireFinding(t, r, id, false)
	}
}

// Implicit TLS has no greeting before the handshake: a silent server is a
// stalled handshake (timeout), and the TLS offer counts as taken.
func TestOutcomeImplicitSilent(t *testing.T) {
	addr := scriptedServer(t, wait)
	r := checkAddr(t, starttls.SMTPS, addr, nil, func(o *Options) { o.Timeout = 400 * time.Millisecond; o.Depth = Session })
	if r.Status != starttls.StatusTimeout || !r.StartTLS.Offered {
		t.Errorf("status %s, offered %v", r.Status, r.StartTLS.Offered)
	}
	for _, id := range outcomeIDs {
		requireFinding(t, r, id, id == "timeout")
	}
}
