package starttls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// Our client against real servers, with verification on: the CA is the
// peer's test CA and the name is the one in its certificate.

func dialPeer(t *testing.T, p starttls.Protocol, addr string, pki *peer.PKI) *starttls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, p, addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "mail.test"}})
	if err != nil {
		t.Fatalf("%s %s: %v", p, addr, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Quit(ctx)
	})
	if !c.Upgraded() || c.ConnectionState().Version < tls.VersionTLS12 || !c.ConnectionState().HandshakeComplete {
		t.Fatalf("%s: not upgraded to TLS >= 1.2: %+v", p, c.ConnectionState())
	}
	if len(c.ConnectionState().VerifiedChains) == 0 {
		t.Fatalf("%s: chain not verified", p)
	}
	return c
}

func TestInteropPostfix(t *testing.T) {
	pf := peer.StartPostfix(t, peer.PostfixOptions{})
	t.Logf("Postfix %s", pf.Version)
	cases := []struct {
		proto starttls.Protocol
		addr  string
	}{
		{starttls.SMTP, pf.SMTPAddr},
		{starttls.Submission, pf.SubmissionAddr},
		{starttls.SMTPS, pf.SMTPSAddr},
	}
	for _, tc := range cases {
		t.Run(string(tc.proto), func(t *testing.T) {
			c := dialPeer(t, tc.proto, tc.addr, pf.PKI)
			if !strings.Contains(c.Greeting, "mail.test") {
				t.Errorf("greeting %q", c.Greeting)
			}
			if tc.proto != starttls.SMTPS && !c.CapabilitiesBefore.Has("STARTTLS") {
				t.Errorf("pre-TLS EHLO lacks STARTTLS: %q", c.CapabilitiesBefore)
			}
			if c.Capabilities.Has("STARTTLS") || !c.Capabilities.Has("PIPELINING") {
				t.Errorf("post-TLS EHLO: %q", c.Capabilities)
			}
			// The session is usable: a command inside TLS gets its answer.
			if _, err := c.Write([]byte("NOOP\r\n")); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "250") {
				t.Errorf("NOOP inside TLS: %q %v", l, err)
			}
		})
	}
	t.Run("wrong name", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := starttls.Dial(ctx, starttls.SMTP, pf.SMTPAddr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: pf.CA.Pool(), ServerName: "other.test"}})
		if !errors.Is(err, starttls.ErrCertificate) {
			t.Errorf("want a certificate error, got %v", err)
		}
	})
}

func TestInteropDovecot(t *testing.T) {
	dc := peer.StartDovecot(t, peer.DovecotOptions{})
	t.Logf("Dovecot %s", dc.Version)
	for _, p := range []starttls.Protocol{starttls.IMAP, starttls.IMAPS} {
		t.Run(string(p), func(t *testing.T) {
			addr := dc.IMAPAddr
			if p == starttls.IMAPS {
				addr = dc.IMAPSAddr
			} else if !c0(t, dc, p, addr).CapabilitiesBefore.Has("LOGINDISABLED") {
				t.Errorf("Dovecot should disable LOGIN before TLS")
			}
			c := dialPeer(t, p, addr, dc.PKI)
			if c.Capabilities.Has("STARTTLS") || c.Capabilities.Has("LOGINDISABLED") || !c.Capabilities.Has("AUTH") {
				t.Errorf("post-TLS capabilities: %q", c.Capabilities)
			}
			// Log in inside TLS: the upgraded session is a real IMAP session.
			if _, err := c.Write([]byte("x1 LOGIN " + dc.User + " " + dc.Password + "\r\n")); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
			for i := 0; i < 5; i++ {
				l, err := c.ReadLine()
				if err != nil {
					t.Fatalf("LOGIN: %v\n%s", err, dc.Log())
				}
				if strings.HasPrefix(l, "x1 ") {
					if !strings.HasPrefix(l, "x1 OK") {
						t.Errorf("LOGIN inside TLS refused: %q", l)
					}
					break
				}
			}
		})
	}
	for _, p := range []starttls.Protocol{starttls.POP3, starttls.POP3S} {
		t.Run(string(p), func(t *testing.T) {
			addr := dc.POP3Addr
			if p == starttls.POP3S {
				addr = dc.POP3SAddr
			}
			c := dialPeer(t, p, addr, dc.PKI)
			if p == starttls.POP3 && (!c.CapabilitiesBefore.Has("STLS") || c.CapabilitiesBefore.Has("USER")) {
				t.Errorf("pre-TLS CAPA: %q", c.CapabilitiesBefore)
			}
			if c.Capabilities.Has("STLS") || !c.Capabilities.Has("USER") {
				t.Errorf("post-TLS CAPA: %q", c.Capabilities)
			}
		})
	}
}

// c0 dials once more to look at the pre-TLS capabilities.
func c0(t *testing.T, dc *peer.Dovecot, p starttls.Protocol, addr string) *starttls.Conn {
	return dialPeer(t, p, addr, dc.PKI)
}

// Our client against Dovecot's LMTP server (dovecot-lmtpd): LHLO lists
// STARTTLS before TLS, the LHLO asked again inside TLS does not, and a
// message delivered inside TLS lands in the user's maildir.
func TestInteropDovecotLMTP(t *testing.T) {
	dc := peer.StartDovecot(t, peer.DovecotOptions{LMTP: true})
	t.Logf("Dovecot %s", dc.Version)
	c := dialPeer(t, starttls.LMTP, dc.LMTPAddr, dc.PKI)
	if !c.CapabilitiesBefore.Has("STARTTLS") {
		t.Errorf("pre-TLS LHLO: %q", c.CapabilitiesBefore)
	}
	if c.Capabilities.Has("STARTTLS") || !c.Capabilities.Has("PIPELINING") {
		t.Errorf("post-TLS LHLO: %q", c.Capabilities)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	for _, step := range []struct{ send, want string }{
		{"MAIL FROM:<sender@x.test>", "250"},
		{"RCPT TO:<" + dc.User + ">", "250"},
		{"DATA", "354"},
		{"Subject: LMTP over STARTTLS\r\n\r\nHello from the starttls client.\r\n.", "250"}, // one reply per recipient
	} {
		if _, err := c.Write([]byte(step.send + "\r\n")); err != nil {
			t.Fatal(err)
		}
		l, err := c.ReadLine()
		if err != nil || !strings.HasPrefix(l, step.want) {
			t.Fatalf("%q inside TLS: %q, %v\n%s", strings.SplitN(step.send, "\r\n", 2)[0], l, err, dc.Log())
		}
	}
	files, _ := filepath.Glob(filepath.Join(dc.Dir, "mail", dc.User, "*", "*"))
	var found bool
	for _, f := range files {
		if b, err := os.ReadFile(f); err == nil && strings.Contains(string(b), "Hello from the starttls client.") {
			found = true
		}
	}
	if !found {
		t.Errorf("the message is not in %s/mail/%s: %q", dc.Dir, dc.User, files)
	}
}
