package tlsrpt

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

type testPKI struct {
	server *tls.Config
	client *tls.Config
	caPEM  []byte
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	ca, err := certs.NewCA("tlsrpt test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Hosts: []string{"reports.test", "127.0.0.1", "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	return testPKI{server: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}},
		client: &tls.Config{RootCAs: ca.Pool(), ServerName: "reports.test"}, caPEM: ca.CertPEM}
}

// startSMTP runs an SMTPServer on loopback until the test ends.
func startSMTP(t *testing.T, s *SMTPServer) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, l) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("SMTP server did not stop")
		}
	})
	return l.Addr().String()
}

// smtpDialogue is a plaintext client that checks each reply's code.
type smtpDialogue struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func (d *smtpDialogue) expect(code int) string {
	d.t.Helper()
	_ = d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var all []string
	for {
		line, err := d.r.ReadString('\n')
		if err != nil {
			d.t.Fatalf("reading reply (want %d): %v after %q", code, err, all)
		}
		line = strings.TrimRight(line, "\r\n")
		all = append(all, line)
		if len(line) < 4 || line[3] != '-' {
			break
		}
	}
	last := all[len(all)-1]
	if !strings.HasPrefix(last, fmt.Sprint(code)) {
		d.t.Fatalf("want %d, got %q", code, all)
	}
	return strings.Join(all, "\n")
}

func (d *smtpDialogue) send(line string, code int) string {
	d.t.Helper()
	if _, err := d.c.Write([]byte(line + "\r\n")); err != nil {
		d.t.Fatal(err)
	}
	return d.expect(code)
}

func dialSMTP(t *testing.T, addr string) *smtpDialogue {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &smtpDialogue{t: t, c: c, r: bufio.NewReader(c)}
}

// data sends one message and returns the final reply.
func (d *smtpDialogue) data(msg []byte, code int) string {
	d.t.Helper()
	d.send("MAIL FROM:<reports@sender.test>", 250)
	d.send("RCPT TO:<tlsrpt@reports.test>", 250)
	d.send("DATA", 354)
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimSuffix(string(msg), "\r\n"), "\r\n") {
		if strings.HasPrefix(l, ".") {
			l = "." + l
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString(".")
	return d.send(b.String(), code)
}

func TestSMTPServer(t *testing.T) {
	pki := newTestPKI(t)
	st := newSQLite(t)
	addr := startSMTP(t, &SMTPServer{Collector: &Collector{Store: st}, TLSConfig: pki.server, Hostname: "reports.test",
		Domains: []string{"reports.test"}, MaxMessage: 200 << 10, MaxLine: 1000})
	good := tlsrpttest.Mail("r@sender.test", "tlsrpt@reports.test", "example.org", "s-1", tlsrpttest.Gzip(allTypesReport("sender.test", "s-1").JSON()), true)

	d := dialSMTP(t, addr)
	d.expect(220)
	if caps := d.send("EHLO client.test", 250); !strings.Contains(caps, "STARTTLS") || !strings.Contains(caps, "SIZE 204800") {
		t.Errorf("EHLO reply %q", caps)
	}
	d.send("MAIL FROM:<a@b.test> SIZE=999999999", 552)
	d.send("MAIL FROM:<a@b.test>", 250)
	d.send("RCPT TO:<postmaster@elsewhere.test>", 550)
	d.send("RSET", 250)
	if r := d.data(good, 250); !strings.Contains(r, "1 report(s) stored") {
		t.Errorf("reply %q", r)
	}
	if r := d.data(good, 250); !strings.Contains(r, "1 duplicate") {
		t.Errorf("reply %q", r)
	}
	d.data(tlsrpttest.PlainMail("a@b.test", "tlsrpt@reports.test"), 550)
	bad := tlsrpttest.Mail("r@sender.test", "tlsrpt@reports.test", "example.org", "s-2", []byte(`{"report-id": 1}`), false)
	if r := d.data(bad, 554); !strings.Contains(r, "5.6.0 Malformed TLS-RPT report") {
		t.Errorf("reply %q", r)
	}
	// Over the DATA cap: 552 in the session, the session goes on.
	big := tlsrpttest.Mail("r@sender.test", "tlsrpt@reports.test", "example.org", "s-3", make([]byte, 300<<10), true)
	d.data(big, 552)
	d.send("NOOP", 250)
	d.send("X"+strings.Repeat("y", 2000), 500)

	// Over TLS with the library's client half.
	c, err := starttls.Dial(context.Background(), starttls.SMTP, addr, &starttls.Config{TLSConfig: pki.client, LocalName: "client.test"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dt := &smtpDialogue{t: t, c: c, r: bufio.NewReader(c)}
	// The client half has said EHLO again inside TLS (RFC 3207 §4.2).
	second := tlsrpttest.Mail("r@sender.test", "TLSRPT@Reports.Test", "example.org", "s-4", allTypesReport("sender.test", "s-4").JSON(), false)
	dt.data(second, 250)
	dt.send("QUIT", 221)

	n, err := st.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if n.Reports != 2 || n.Quarantined != 1 || n.Failures != 22 {
		t.Errorf("counts %+v", n)
	}
	var src string
	if err := st.DB.QueryRow(`SELECT source FROM tlsrpt_reports WHERE report_id = 's-4'`).Scan(&src); err != nil || !strings.Contains(src, "TLS 1.3") {
		t.Errorf("source %q %v", src, err)
	}
}

// RequireTLS: mail commands before STARTTLS are refused by the library.
func TestSMTPRequireTLS(t *testing.T) {
	pki := newTestPKI(t)
	addr := startSMTP(t, &SMTPServer{Collector: &Collector{Store: newSQLite(t)}, TLSConfig: pki.server, Hostname: "reports.test", RequireTLS: true})
	d := dialSMTP(t, addr)
	d.expect(220)
	d.send("EHLO client.test", 250)
	d.send("MAIL FROM:<a@b.test>", 530)
}

// Per-IP limits: connections past the burst get 421 at once.
func TestSMTPRateLimit(t *testing.T) {
	pki := newTestPKI(t)
	addr := startSMTP(t, &SMTPServer{Collector: &Collector{Store: newSQLite(t)}, TLSConfig: pki.server,
		Limits: Limits{PerMinute: 1, Burst: 2, MaxConcurrent: 10}})
	for i := 0; i < 2; i++ {
		d := dialSMTP(t, addr)
		d.expect(220)
		d.send("QUIT", 221)
	}
	d := dialSMTP(t, addr)
	if r := d.expect(421); !strings.Contains(r, "4.7.0") {
		t.Errorf("reply %q", r)
	}
}

// A client that goes silent is dropped after IdleTimeout.
func TestSMTPIdleTimeout(t *testing.T) {
	pki := newTestPKI(t)
	addr := startSMTP(t, &SMTPServer{Collector: &Collector{Store: newSQLite(t)}, TLSConfig: pki.server, IdleTimeout: 300 * time.Millisecond})
	d := dialSMTP(t, addr)
	d.expect(220)
	d.send("EHLO client.test", 250)
	d.send("MAIL FROM:<a@b.test>", 250) // hand-off to the application
	start := time.Now()
	_ = d.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := d.r.ReadString('\n'); err == nil {
		t.Fatal("server sent something instead of closing")
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("closed after %v", el)
	}
}

// Mail commands need a greeting first, and the session ends after too
// many errors.
func TestSMTPNeedsEHLO(t *testing.T) {
	pki := newTestPKI(t)
	addr := startSMTP(t, &SMTPServer{Collector: &Collector{Store: newSQLite(t)}, TLSConfig: pki.server})
	d := dialSMTP(t, addr)
	d.expect(220)
	d.send("MAIL FROM:<a@b.test>", 503) // handed off in plaintext, no EHLO yet
	d.send("RCPT TO:<x@y.test>", 503)
	d.send("DATA", 503)
	for i := 0; i < 6; i++ {
		d.send("BOGUS", 502)
	}
	d.send("BOGUS", 502)
	if r := d.expect(421); !strings.Contains(r, "Too many") {
		t.Errorf("reply %q", r)
	}
}
