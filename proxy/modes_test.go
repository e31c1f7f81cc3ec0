package proxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// remoteSMTP is a STARTTLS server (the library's server half) that answers
// inside TLS like a mail server, advertising STARTTLS again on purpose.
func remoteSMTP(t *testing.T, pki *testPKI) string {
	t.Helper()
	cs, err := LoadCertStore(pki.certFile, pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	srv := &starttls.Server{Protocol: starttls.SMTP,
		Config: starttls.ServerConfig{TLSConfig: &tls.Config{GetCertificate: cs.GetCertificate}, Hostname: "remote.test"},
		Handler: func(ctx context.Context, c *starttls.Conn) {
			defer c.Close()
			for i := 0; i < 50; i++ {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				line, err := c.ReadLine()
				if err != nil {
					return
				}
				switch strings.ToUpper(strings.Fields(line + " x")[0]) {
				case "EHLO":
					io.WriteString(c, "250-remote.test\r\n250-STARTTLS\r\n250 AUTH PLAIN\r\n")
				case "QUIT":
					io.WriteString(c, "221 bye\r\n")
					return
				default:
					io.WriteString(c, "250 remote ok "+line+"\r\n")
				}
			}
		}}
	go func() { defer close(done); _ = srv.Serve(ctx, l) }()
	return l.Addr().String()
}

func TestOriginate(t *testing.T) {
	pki := newTestPKI(t)
	remote := remoteSMTP(t, pki)
	m := newCountingMetrics()
	srv := startProxy(t, Options{Metrics: m}, Listener{Mode: Originate, Protocol: starttls.SMTP, Backend: remote,
		ClientTLS: &tls.Config{RootCAs: pki.ca.Pool(), ServerName: "localhost"}, Hostname: "local.proxy"})
	lc := dialLines(t, srv.Addr(0).String())
	if g := lc.smtpReply(); !strings.HasPrefix(g[0], "220 local.proxy") {
		t.Fatalf("greeting %q", g)
	}
	lc.send("EHLO plain-client\r\n")
	r := lc.smtpReply()
	if strings.Join(r, "|") != "250-remote.test|250 AUTH PLAIN" {
		t.Errorf("EHLO reply %q: want the remote's, without STARTTLS", r)
	}
	lc.send("NOOP\r\n")
	if r := lc.smtpReply(); r[0] != "250 remote ok NOOP" {
		t.Errorf("NOOP: %q", r)
	}
	lc.send("QUIT\r\n")
	lc.smtpReply()
	if m.handshakeCount() != 1 {
		t.Errorf("handshakes %d", m.handshakes)
	}
}

// Originate with a CA that does not match, or a wrong pin: the plaintext
// client gets a clean 421 and the failure is counted as a certificate error.
func TestOriginateVerification(t *testing.T) {
	pki := newTestPKI(t)
	other := newTestPKI(t)
	remote := remoteSMTP(t, pki)
	goodPin := SPKIPin(mustLeaf(t, pki))
	for _, tc := range []struct {
		name   string
		tc     *tls.Config
		pins   [][32]byte
		reason string
	}{
		{"wrong CA", &tls.Config{RootCAs: other.ca.Pool(), ServerName: "localhost"}, nil, "remote-certificate-error"},
		{"wrong name", &tls.Config{RootCAs: pki.ca.Pool(), ServerName: "mx.elsewhere.test"}, nil, "remote-certificate-error"},
		{"wrong pin", &tls.Config{RootCAs: pki.ca.Pool(), ServerName: "localhost"}, [][32]byte{{1}}, "remote-"},
		{"good pin", &tls.Config{RootCAs: pki.ca.Pool(), ServerName: "localhost"}, [][32]byte{{1}, goodPin}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newCountingMetrics()
			srv := startProxy(t, Options{Metrics: m}, Listener{Mode: Originate, Protocol: starttls.SMTP, Backend: remote, ClientTLS: tc.tc, Pins: tc.pins})
			lc := dialLines(t, srv.Addr(0).String())
			g := lc.smtpReply()
			if tc.reason == "" {
				if !strings.HasPrefix(g[0], "220 ") {
					t.Errorf("greeting %q", g)
				}
				return
			}
			if !strings.HasPrefix(g[0], "421 ") {
				t.Errorf("got %q, want 421", g)
			}
			ok := waitFor(2*time.Second, func() bool {
				m.mu.Lock()
				defer m.mu.Unlock()
				for r := range m.failures {
					if strings.HasPrefix(r, tc.reason) {
						return true
					}
				}
				return false
			})
			if !ok {
				t.Errorf("failures %v, want %s", m.failures, tc.reason)
			}
		})
	}
}

func mustLeaf(t *testing.T, pki *testPKI) *x509.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// Limits: per client IP and per listener; the refused client gets a
// protocol answer, not a silent close.
func TestLimits(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	l := terminateListener(t, pki, starttls.SMTP, be.addr)
	l.MaxPerIP = 2
	m := newCountingMetrics()
	srv := startProxy(t, Options{Metrics: m}, l)
	a := dialLines(t, srv.Addr(0).String())
	a.smtpReply()
	b := dialLines(t, srv.Addr(0).String())
	b.smtpReply()
	c := dialLines(t, srv.Addr(0).String())
	if r := c.smtpReply(); !strings.HasPrefix(r[0], "421 4.7.0") {
		t.Errorf("third connection got %q", r)
	}
	if m.failure(ReasonLimitIP) != 1 {
		t.Errorf("failures %v", m.failures)
	}
	a.send("QUIT\r\n")
	a.smtpReply()
	// Once a session ends, a new one is admitted.
	if !waitFor(2*time.Second, func() bool { return srv.Active() == 1 }) {
		t.Fatalf("active %d", srv.Active())
	}
	d := dialLines(t, srv.Addr(0).String())
	if r := d.smtpReply(); !strings.HasPrefix(r[0], "220 ") {
		t.Errorf("after a slot freed: %q", r)
	}
}

func TestTotalLimit(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "pop3", false)
	srv := startProxy(t, Options{MaxConns: 1}, terminateListener(t, pki, starttls.POP3, be.addr))
	a := dialLines(t, srv.Addr(0).String())
	a.line()
	b := dialLines(t, srv.Addr(0).String())
	if l := b.line(); !strings.HasPrefix(l, "-ERR [IN-USE]") {
		t.Errorf("got %q", l)
	}
}

// Timeouts: a client stalling before TLS (slowloris), one sending garbage
// instead of a ClientHello, and an idle relayed session all end in a
// close with a counted reason, within bounds.
func TestTimeoutsAndGarbage(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	l := terminateListener(t, pki, starttls.SMTP, be.addr)
	l.Timeouts = Timeouts{PreTLS: 300 * time.Millisecond, Handshake: 300 * time.Millisecond, Idle: 400 * time.Millisecond}
	m := newCountingMetrics()
	srv := startProxy(t, Options{Metrics: m}, l)
	addr := srv.Addr(0).String()

	t.Run("stall before TLS", func(t *testing.T) {
		lc := dialLines(t, addr)
		lc.smtpReply()
		start := time.Now()
		// Slowloris: a byte now and then, never a full line.
		for i := 0; i < 10; i++ {
			if _, err := lc.c.Write([]byte("N")); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if _, err := lc.br.ReadString('\n'); err == nil {
			t.Error("not closed")
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("closed after %s", d)
		}
		if !waitFor(2*time.Second, func() bool { return m.failure("client-timeout") >= 1 }) {
			t.Errorf("failures %v", m.failures)
		}
	})
	t.Run("garbage instead of ClientHello", func(t *testing.T) {
		lc := dialLines(t, addr)
		lc.smtpReply()
		lc.send("EHLO x\r\n")
		lc.smtpReply()
		lc.send("STARTTLS\r\n")
		lc.smtpReply()
		lc.send("GET / HTTP/1.0\r\n\r\n")
		_ = lc.c.SetReadDeadline(time.Now().Add(3 * time.Second))
		if _, err := io.ReadAll(lc.c); err != nil && !strings.Contains(err.Error(), "reset") {
			t.Errorf("not closed cleanly: %v", err)
		}
		if !waitFor(2*time.Second, func() bool { return m.failure("client-handshake-error") >= 1 }) {
			t.Errorf("failures %v", m.failures)
		}
	})
	t.Run("idle session", func(t *testing.T) {
		c := dialProxy(t, starttls.SMTP, addr, pki)
		start := time.Now()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.ReadLine(); err == nil {
			t.Error("idle session not closed")
		}
		if d := time.Since(start); d < 300*time.Millisecond || d > 3*time.Second {
			t.Errorf("closed after %s, want about 400ms", d)
		}
		if !waitFor(2*time.Second, func() bool { return m.failure(ReasonIdle) >= 1 }) {
			t.Errorf("failures %v", m.failures)
		}
	})
	t.Run("busy download is not idle", func(t *testing.T) {
		c := dialProxy(t, starttls.SMTP, addr, pki)
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		// The client sends nothing for three idle timeouts while the
		// backend sends a line every 100 ms: the session must survive.
		start := time.Now()
		io.WriteString(c, "TRICKLE 12 100\r\n")
		for lines := 0; ; lines++ {
			s, err := c.ReadLine()
			if err != nil {
				t.Fatalf("after %d lines and %s: %v", lines, time.Since(start).Round(time.Millisecond), err)
			}
			if s == "250 trickle done" {
				break
			}
		}
		// And a bulk download right after, then a silence shorter than the timeout.
		for i := 0; i < 2; i++ {
			io.WriteString(c, "BLOB 20000\r\n")
			for {
				s, err := c.ReadLine()
				if err != nil {
					t.Fatalf("blob %d: %v", i, err)
				}
				if s == "250 blob done" {
					break
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// PROXY v2 reaches the backend with the client's address and the SSL TLV.
func TestProxyProtocol(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", true)
	l := terminateListener(t, pki, starttls.SMTP, be.addr)
	l.ProxyProtocol = true
	srv := startProxy(t, Options{}, l)
	c := dialProxy(t, starttls.SMTP, srv.Addr(0).String(), pki)
	if c.Capabilities.Has("STARTTLS") || !c.Capabilities.Has("PIPELINING") {
		t.Fatalf("capabilities %q", c.Capabilities)
	}
	be.mu.Lock()
	hdrs := be.hdrs
	be.mu.Unlock()
	if len(hdrs) != 1 {
		t.Fatalf("%d headers, lines %q", len(hdrs), be.received())
	}
	h := hdrs[0]
	if h[12] != 0x21 || h[13] != 0x11 {
		t.Fatalf("version/command %#x family %#x", h[12], h[13])
	}
	src := net.IP(h[16:20])
	sport := binary.BigEndian.Uint16(h[24:26])
	dport := binary.BigEndian.Uint16(h[26:28])
	local := c.TLS.LocalAddr().(*net.TCPAddr)
	if !src.Equal(local.IP) || int(sport) != local.Port {
		t.Errorf("source %s:%d, want the client's %s", src, sport, local)
	}
	if int(dport) != srv.Addr(0).(*net.TCPAddr).Port {
		t.Errorf("destination port %d", dport)
	}
	tlvs := h[28:]
	if len(tlvs) < 8 || tlvs[0] != pp2TypeSSL || tlvs[3]&pp2ClientSSL == 0 || !bytes.Contains(tlvs, []byte("TLSv1.3")) {
		t.Errorf("SSL TLV missing or wrong: %q", tlvs)
	}
}

// Certificate reload: new handshakes get the new certificate, a session
// opened before keeps working.
func TestCertificateReload(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	l := terminateListener(t, pki, starttls.SMTP, be.addr)
	srv := startProxy(t, Options{}, l)
	addr := srv.Addr(0).String()
	old := dialProxy(t, starttls.SMTP, addr, pki)
	oldSerial := old.ConnectionState().PeerCertificates[0].SerialNumber

	// Same file names, new content (as certbot does).
	newLeaf := pki.issue(t, "server")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reloaded := make(chan error, 4)
	go l.Certificates.Watch(ctx, 50*time.Millisecond, func(err error) { reloaded <- err })
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		// Same mtime granularity and size: force it, as SIGHUP would.
		if err := l.Certificates.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	fresh := dialProxy(t, starttls.SMTP, addr, pki)
	if got := fresh.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(newLeaf.Cert.SerialNumber) != 0 || got.Cmp(oldSerial) == 0 {
		t.Errorf("new session got serial %s, want the new %s", got, newLeaf.Cert.SerialNumber)
	}
	io.WriteString(old, "NOOP\r\n")
	if s, err := old.ReadLine(); err != nil || s != "250 ok NOOP" {
		t.Errorf("old session after reload: %q %v", s, err)
	}
	// A broken file keeps the current certificate.
	writeFile(t, pki.dir, "server.pem", "not a certificate")
	if err := l.Certificates.Reload(); err == nil {
		t.Error("reload of a broken file succeeded")
	}
	again := dialProxy(t, starttls.SMTP, addr, pki)
	if got := again.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(newLeaf.Cert.SerialNumber) != 0 {
		t.Errorf("after a failed reload: serial %s", got)
	}
}

// Graceful shutdown: accepting stops at once, a session in progress goes
// on until it ends (within the drain bound), and Serve then returns.
func TestGracefulDrain(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	l := terminateListener(t, pki, starttls.SMTP, be.addr)
	l.Listen = "127.0.0.1:0"
	srv, err := New(Options{Drain: 5 * time.Second}, l)
	if err != nil {
		t.Fatal(err)
	}
	addr := srv.Addr(0).String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c := dialProxy(t, starttls.SMTP, addr, pki)
	cancel()
	time.Sleep(100 * time.Millisecond)
	if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		conn.Close()
		t.Error("still accepting after shutdown began")
	}
	io.WriteString(c, "NOOP\r\n")
	if s, err := c.ReadLine(); err != nil || s != "250 ok NOOP" {
		t.Errorf("session during drain: %q %v", s, err)
	}
	select {
	case <-done:
		t.Fatal("Serve returned while a session was open")
	default:
	}
	io.WriteString(c, "QUIT\r\n")
	c.ReadLine()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the last session")
	}
}

// The drain is bounded: a session that never ends is closed.
func TestDrainBound(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	l := terminateListener(t, pki, starttls.SMTP, be.addr)
	l.Listen = "127.0.0.1:0"
	srv, err := New(Options{Drain: 300 * time.Millisecond}, l)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	c := dialProxy(t, starttls.SMTP, srv.Addr(0).String(), pki)
	// One more client stuck before TLS.
	lc := dialLines(t, srv.Addr(0).String())
	lc.smtpReply()
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("drain not bounded")
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.ReadLine(); err == nil {
		t.Error("session still open after the drain bound")
	}
	if srv.Active() != 0 {
		t.Errorf("%d sessions left", srv.Active())
	}
}

// Optional policy: a plaintext session is relayed, with the client's EHLO replayed.
func TestOptionalPlaintext(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	l := terminateListener(t, pki, starttls.SMTP, be.addr)
	l.Policy = starttls.Optional
	srv := startProxy(t, Options{}, l)
	lc := dialLines(t, srv.Addr(0).String())
	lc.smtpReply()
	lc.send("EHLO plain\r\n")
	lc.smtpReply()
	lc.send("MAIL FROM:<a@b>\r\n")
	if r := lc.smtpReply(); r[0] != "250 ok MAIL FROM:<a@b>" {
		t.Errorf("got %q", r)
	}
	if got := be.received(); len(got) < 2 || got[0] != "EHLO plain" || got[1] != "MAIL FROM:<a@b>" {
		t.Errorf("backend saw %q", got)
	}
}

// A backend that dies mid-stream: the client gets what was sent and a
// prompt close, the session is gone.
func TestBackendDiesMidStream(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	srv := startProxy(t, Options{}, terminateListener(t, pki, starttls.SMTP, be.addr))
	c := dialProxy(t, starttls.SMTP, srv.Addr(0).String(), pki)
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	io.WriteString(c, "DIE\r\n")
	if l, err := c.ReadLine(); err != nil || l != "250-partial" {
		t.Errorf("got %q %v", l, err)
	}
	if l, err := c.ReadLine(); err == nil {
		t.Errorf("connection open after the backend died: %q", l)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
	if !waitFor(3*time.Second, func() bool { return srv.Active() == 0 }) {
		t.Errorf("%d sessions left", srv.Active())
	}
}
