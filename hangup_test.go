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
)

// hangupServer plays an SMTP server that upgrades, answers the post-TLS
// EHLO, then reads the QUIT and answers it only once release is closed.
// It sends what it read after TLS to got.
func hangupServer(t *testing.T, pki *testPKI, release <-chan struct{}, got chan<- string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
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
	}()
	return ln.Addr().String()
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
