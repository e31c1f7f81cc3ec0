package proxy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

func dialProxy(t *testing.T, proto starttls.Protocol, addr string, pki *testPKI) *starttls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, proto, addr, &starttls.Config{TLSConfig: pki.clientTLS()})
	if err != nil {
		t.Fatalf("dial %s through the proxy: %v", proto, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Terminate: the client sees the proxy's dialogue, then the backend's
// capabilities inside TLS without STARTTLS; commands reach the backend.
func TestTerminateSMTP(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	m := newCountingMetrics()
	srv := startProxy(t, Options{Metrics: m}, terminateListener(t, pki, starttls.SMTP, be.addr))
	c := dialProxy(t, starttls.SMTP, srv.Addr(0).String(), pki)
	if !strings.Contains(c.Greeting, "proxy.test") {
		t.Errorf("greeting %q is not the proxy's", c.Greeting)
	}
	if !c.CapabilitiesBefore.Has("STARTTLS") {
		t.Errorf("pre-TLS capabilities lack STARTTLS: %q", c.CapabilitiesBefore)
	}
	if c.Capabilities.Has("STARTTLS") {
		t.Errorf("STARTTLS advertised after TLS: %q", c.Capabilities)
	}
	for _, want := range []string{"PIPELINING", "AUTH", "8BITMIME"} {
		if !c.Capabilities.Has(want) {
			t.Errorf("backend capability %s lost: %q", want, c.Capabilities)
		}
	}
	if got := c.Capabilities; len(got) != 3 {
		t.Errorf("capabilities %q, want 3 entries", got)
	}
	if _, err := io.WriteString(c, "EHLOLAST x\r\nNOOP\r\n"); err != nil {
		t.Fatal(err)
	}
	var lines []string
	for i := 0; i < 3; i++ {
		l, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l)
	}
	// "250 STARTTLS" as the last line: dropped, and the line before it ends the reply.
	if want := []string{"250-backend.test", "250 SIZE 1000", "250 ok NOOP"}; strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", lines, want)
	}
	got := be.received()
	if len(got) < 1 || !strings.HasPrefix(got[0], "EHLO ") {
		t.Errorf("backend saw %q: the client's post-TLS EHLO should come first", got)
	}
	for _, l := range got {
		if strings.EqualFold(l, "STARTTLS") {
			t.Errorf("backend saw STARTTLS: %q", got)
		}
	}
	if m.handshakeCount() != 1 {
		t.Errorf("%d handshakes counted", m.handshakes)
	}
}

func TestTerminateIMAPAndPOP3Filter(t *testing.T) {
	pki := newTestPKI(t)
	t.Run("imap", func(t *testing.T) {
		be := startBackend(t, "imap", false)
		srv := startProxy(t, Options{}, terminateListener(t, pki, starttls.IMAP, be.addr))
		c := dialProxy(t, starttls.IMAP, srv.Addr(0).String(), pki)
		if c.Capabilities.Has("STARTTLS") || c.Capabilities.Has("LOGINDISABLED") || !c.Capabilities.Has("AUTH") {
			t.Errorf("post-TLS capabilities %q", c.Capabilities)
		}
		// A literal whose text looks like capability lines passes untouched.
		io.WriteString(c, "a1 FETCH 1 BODY[]\r\n")
		var got []string
		for i := 0; i < 5; i++ {
			l, err := c.ReadLine()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, l)
		}
		want := []string{"* 1 FETCH (BODY[] {43}", "* CAPABILITY STARTTLS", "250-STARTTLS", "STLS", ")"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("literal changed: got %q want %q", got, want)
		}
	})
	t.Run("pop3", func(t *testing.T) {
		be := startBackend(t, "pop3", false)
		srv := startProxy(t, Options{}, terminateListener(t, pki, starttls.POP3, be.addr))
		c := dialProxy(t, starttls.POP3, srv.Addr(0).String(), pki)
		if c.Capabilities.Has("STLS") || !c.Capabilities.Has("USER") || !c.Capabilities.Has("SASL") {
			t.Errorf("post-TLS capabilities %q", c.Capabilities)
		}
		// Pipelined: RETR's body keeps its STLS line, CAPA loses it.
		io.WriteString(c, "RETR 1\r\nCAPA\r\nNOOP\r\n")
		var got []string
		for i := 0; i < 12; i++ {
			l, err := c.ReadLine()
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, l)
		}
		want := []string{"+OK message", "Subject: x", "", "STLS", "..dot", ".",
			"+OK caps", "TOP", "USER", "SASL PLAIN", ".", "+OK NOOP"}
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})
}

// Command injection (CVE-2011-0411 class): what the client pipelines after
// STARTTLS never reaches the backend, under both injection policies.
func TestInjectionNeverReachesBackend(t *testing.T) {
	pki := newTestPKI(t)
	for _, pol := range []starttls.InjectionPolicy{starttls.Close, starttls.Discard} {
		t.Run(fmt.Sprint(pol), func(t *testing.T) {
			be := startBackend(t, "smtp", false)
			l := terminateListener(t, pki, starttls.SMTP, be.addr)
			l.Injection = pol
			var mu sync.Mutex
			var events []string
			srv := startProxy(t, Options{OnEvent: func(_ string, _ net.Addr, e starttls.Event) {
				mu.Lock()
				events = append(events, e.Kind)
				mu.Unlock()
			}}, l)
			lc := dialLines(t, srv.Addr(0).String())
			lc.smtpReply()
			lc.send("EHLO client\r\n")
			lc.smtpReply()
			lc.send("STARTTLS\r\nMAIL FROM:<evil@example>\r\nNOOP\r\n")
			if pol == starttls.Close {
				if l, err := lc.br.ReadString('\n'); err == nil {
					t.Errorf("connection not closed after injection; got %q", l)
				}
			} else {
				if r := lc.smtpReply(); !strings.HasPrefix(r[0], "220") {
					t.Fatalf("STARTTLS answered %q", r)
				}
				lc.startTLS(pki.clientTLS())
				lc.send("EHLO client\r\n")
				r := lc.smtpReply()
				for _, x := range r {
					if strings.Contains(x, "STARTTLS") {
						t.Errorf("STARTTLS advertised after TLS: %q", r)
					}
				}
				lc.send("QUIT\r\n")
				lc.smtpReply()
			}
			time.Sleep(100 * time.Millisecond)
			if pol == starttls.Close && be.connections() != 0 {
				t.Errorf("the backend was contacted for a session closed before TLS")
			}
			for _, x := range be.received() {
				if strings.Contains(x, "evil") || x == "NOOP" {
					t.Errorf("injected command reached the backend: %q", be.received())
				}
			}
			mu.Lock()
			defer mu.Unlock()
			if len(events) != 1 {
				t.Errorf("events %q, want one command-injection", events)
			}
		})
	}
}

// A backend that is down gives the client its protocol's clean error
// inside TLS, quickly, instead of a hang.
func TestBackendDown(t *testing.T) {
	pki := newTestPKI(t)
	ln := startBackend(t, "smtp", false)
	dead := ln.addr
	ln.ln.Close() // nothing listens there now
	for _, tc := range []struct {
		proto    starttls.Protocol
		dialogue []string // client lines before TLS
		want     string
	}{
		{starttls.SMTP, []string{"EHLO c", "STARTTLS"}, "421 4.3.0"},
		{starttls.IMAP, []string{"a STARTTLS"}, "* BYE [UNAVAILABLE]"},
		{starttls.POP3, []string{"STLS"}, "-ERR [SYS/TEMP]"},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			m := newCountingMetrics()
			srv := startProxy(t, Options{Metrics: m}, terminateListener(t, pki, tc.proto, dead))
			start := time.Now()
			lc := dialLines(t, srv.Addr(0).String())
			lc.line() // greeting
			for _, l := range tc.dialogue {
				lc.send(l + "\r\n")
				if tc.proto == starttls.SMTP {
					lc.smtpReply()
				} else {
					lc.line()
				}
			}
			lc.startTLS(pki.clientTLS())
			if got := lc.line(); !strings.HasPrefix(got, tc.want) {
				t.Errorf("client got %q, want %q", got, tc.want)
			}
			if _, err := lc.br.ReadString('\n'); err == nil {
				t.Errorf("connection still open after the error")
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %s", d)
			}
			if !waitFor(2*time.Second, func() bool { return m.failure(ReasonBackendDown) == 1 }) {
				t.Errorf("failures %v", m.failures)
			}
		})
	}
}

// Implicit TLS: the backend's greeting reaches the client inside TLS.
func TestImplicit(t *testing.T) {
	pki := newTestPKI(t)
	be := startBackend(t, "imap", false)
	l := terminateListener(t, pki, starttls.IMAPS, be.addr)
	l.Mode = ""
	srv := startProxy(t, Options{}, l)
	c := dialProxy(t, starttls.IMAPS, srv.Addr(0).String(), pki)
	if !strings.Contains(c.Greeting, "backend ready") || strings.Contains(c.Greeting, "STARTTLS") || strings.Contains(c.Greeting, "LOGINDISABLED") {
		t.Errorf("greeting %q", c.Greeting)
	}
	if c.Capabilities.Has("STARTTLS") || !c.Capabilities.Has("ID") {
		t.Errorf("capabilities %q", c.Capabilities)
	}
}

// Byte integrity: 100 MiB each way through the proxy hash the same.
func TestByteIntegrity(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MiB each way: not with -short")
	}
	pki := newTestPKI(t)
	be := startBackend(t, "smtp", false)
	srv := startProxy(t, Options{}, terminateListener(t, pki, starttls.SMTP, be.addr))
	c := dialProxy(t, starttls.SMTP, srv.Addr(0).String(), pki)
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	// Up: DATA with 100 MiB of lines; the backend answers with its hash.
	io.WriteString(c, "DATA\r\n")
	if l, _ := c.ReadLine(); !strings.HasPrefix(l, "354") {
		t.Fatalf("DATA: %q", l)
	}
	const size = 100 << 20
	line := []byte(strings.Repeat("0123456789abcdef", 4) + "xyz\r\n") // 69 bytes
	h := sha256.New()
	var buf []byte
	for len(buf)+len(line) <= 1<<20 {
		buf = append(buf, line...)
	}
	var sent int64
	for sent < size {
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		h.Write(buf)
		sent += int64(len(buf))
	}
	io.WriteString(c, ".\r\n")
	l, err := c.ReadLine()
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("250 %d %s", sent, hex.EncodeToString(h.Sum(nil))); l != want {
		t.Errorf("backend got %q, want %q", l, want)
	}
	// Down: 100 MiB of lines from the backend.
	const lines = (100 << 20) / 78
	io.WriteString(c, fmt.Sprintf("BLOB %d\r\n", lines))
	want := sha256.New()
	bl := strings.Repeat("QUJDRGVm", 9) + "QUJD\r\n"
	for i := 0; i < lines; i++ {
		want.Write([]byte(bl))
	}
	got := sha256.New()
	var n int64
	for {
		s, err := c.ReadLine()
		if err != nil {
			t.Fatal(err)
		}
		if s == "250 blob done" {
			break
		}
		got.Write([]byte(s + "\r\n"))
		n += int64(len(s) + 2)
	}
	if hex.EncodeToString(got.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Errorf("down stream differs after %d bytes", n)
	}
}
