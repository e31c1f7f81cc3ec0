package starttls_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/loopback"
)

// hangupServer plays an SMTP server that upgrades, answers the post-TLS
// EHLO, then reads the QUIT and answers it only once release is closed.
// It sends what it read after TLS to got.
func hangupServer(t *testing.T, pki *testPKI, release <-chan struct{}, got chan<- string) string {
	t.Helper()
	return loopback.Serve(t, 10*time.Second, func(c net.Conn) {
		br := bufio.NewReader(c)
		say := func(w interface{ Write([]byte) (int, error) }, s string) { _, _ = w.Write([]byte(s)) }
		say(c, "220 localhost ESMTP\r\n")
		_, _ = br.ReadString('\n')
		say(c, "250-localhost\r\n250 STARTTLS\r\n")
		_, _ = br.ReadString('\n')
		say(c, "220 go ahead\r\n")
		tc := tls.Server(c, pki.Server)
		if tc.Handshake() != nil {
			return
		}
		tr := bufio.NewReader(tc)
		_, _ = tr.ReadString('\n')
		say(tc, "250-localhost\r\n250 PIPELINING\r\n")
		line, _ := tr.ReadString('\n')
		got <- strings.TrimSpace(line)
		<-release
		say(tc, "221 bye\r\n")
	})
}

func dialHangup(t *testing.T, pki *testPKI, addr string) *starttls.Conn {
	t.Helper()
	cfg := &starttls.Config{TLSConfig: pki.Client.Clone(), PhaseTimeout: 5 * time.Second}
	cfg.TLSConfig.ServerName = "localhost"
	c, err := starttls.Dial(t.Context(), starttls.SMTP, addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Hangup sends QUIT and returns without its answer: here the answer only
// comes after Hangup has returned, so a Hangup that waited would hang
// until the phase deadline and fail the test's own.
func TestHangupSendsQuitWithoutWaiting(t *testing.T) {
	pki := newPKI(t)
	release, got := make(chan struct{}), make(chan string, 1)
	defer close(release)
	c := dialHangup(t, pki, hangupServer(t, pki, release, got))
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Hangup(ctx) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Hangup: %v", err)
		}
	case <-time.After(4 * time.Second): // below the 5-second phase deadline
		t.Fatal("Hangup waited for the answer to QUIT")
	}
	if line := <-got; line != "QUIT" {
		t.Errorf("server read %q after the post-TLS EHLO, want QUIT", line)
	}
}

// Quit, by contrast, waits for the answer: it has not returned when the
// server has read QUIT but not yet answered.
func TestQuitWaitsForAnswer(t *testing.T) {
	pki := newPKI(t)
	release, got := make(chan struct{}), make(chan string, 1)
	c := dialHangup(t, pki, hangupServer(t, pki, release, got))
	done := make(chan error, 1)
	go func() { done <- c.Quit(t.Context()) }()
	<-got
	select {
	case err := <-done:
		t.Fatalf("Quit returned (%v) before the server answered", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Quit: %v", err)
	}
}

// A failed write is Hangup's error.
func TestHangupReportsWriteError(t *testing.T) {
	pki := newPKI(t)
	release, got := make(chan struct{}), make(chan string, 1)
	defer close(release)
	c := dialHangup(t, pki, hangupServer(t, pki, release, got))
	c.Conn.(*tls.Conn).NetConn().Close()
	if err := c.Hangup(t.Context()); err == nil {
		t.Fatal("Hangup on a closed connection returned nil")
	}
}

// firstAfterTLS plays an SMTP server that upgrades and reports the first
// command it reads inside TLS, answering EHLO with post-TLS capabilities.
func firstAfterTLS(t *testing.T, pki *testPKI, got chan<- string) string {
	t.Helper()
	return loopback.Serve(t, 10*time.Second, func(c net.Conn) {
		br := bufio.NewReader(c)
		_, _ = c.Write([]byte("220 localhost ESMTP\r\n"))
		_, _ = br.ReadString('\n')
		_, _ = c.Write([]byte("250-localhost\r\n250-BEFORETLS\r\n250 STARTTLS\r\n"))
		_, _ = br.ReadString('\n')
		_, _ = c.Write([]byte("220 go ahead\r\n"))
		tc := tls.Server(c, pki.Server)
		if tc.Handshake() != nil {
			return
		}
		tr := bufio.NewReader(tc)
		for {
			line, err := tr.ReadString('\n')
			if err != nil {
				return
			}
			line = strings.TrimSpace(line)
			select {
			case got <- line:
			default:
			}
			if strings.HasPrefix(line, "EHLO") {
				_, _ = tc.Write([]byte("250-localhost\r\n250 AFTERTLS\r\n"))
			} else {
				_, _ = tc.Write([]byte("221 bye\r\n"))
				return
			}
		}
	})
}

// SkipCapabilityQuery leaves the EHLO inside TLS to the caller, and the
// Conn then claims no capabilities (not the pre-TLS ones); without it the
// library asks and returns only what the server said inside TLS.
func TestSkipCapabilityQuery(t *testing.T) {
	pki := newPKI(t)
	for _, skip := range []bool{true, false} {
		got := make(chan string, 1)
		addr := firstAfterTLS(t, pki, got)
		cfg := &starttls.Config{TLSConfig: pki.Client.Clone(), PhaseTimeout: 5 * time.Second, SkipCapabilityQuery: skip}
		cfg.TLSConfig.ServerName = "localhost"
		c, err := starttls.Dial(t.Context(), starttls.SMTP, addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if !c.CapabilitiesBefore.Has("BEFORETLS") {
			t.Errorf("skip=%v: capabilities before TLS %q", skip, c.CapabilitiesBefore)
		}
		if _, err := c.Write([]byte("NOOP\r\n")); err != nil {
			t.Fatal(err)
		}
		first := <-got
		switch {
		case skip && (first != "NOOP" || len(c.Capabilities) != 0):
			t.Errorf("skip: first command inside TLS %q (want the caller's NOOP), capabilities %q (want none)", first, c.Capabilities)
		case !skip && (!strings.HasPrefix(first, "EHLO") || !c.Capabilities.Has("AFTERTLS") || c.Capabilities.Has("BEFORETLS")):
			t.Errorf("no skip: first command inside TLS %q (want EHLO), capabilities %q (want only the post-TLS ones)", first, c.Capabilities)
		}
		c.Close()
	}
}
