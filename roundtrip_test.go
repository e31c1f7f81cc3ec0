package starttls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// testPKI is a CA, a server config holding a leaf for localhost/127.0.0.1
// and a client config trusting the CA.
type testPKI struct {
	CA     *certs.CA
	Server *tls.Config
	Client *tls.Config
}

func newPKI(t testing.TB) *testPKI {
	t.Helper()
	ca, err := certs.NewCA("roundtrip test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{
		CA:     ca,
		Server: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}},
		Client: &tls.Config{RootCAs: ca.Pool()},
	}
}

// postTLSCaps answers the client's post-TLS capability query the way a
// real application would, so that the round trip completes.
func postTLSCaps(t testing.TB, c *starttls.Conn) {
	base := starttls.Protocol(strings.TrimSuffix(string(c.Protocol), "s"))
	if c.Protocol == starttls.SMTPS {
		base = starttls.SMTP
	}
	if c.Implicit {
		greet := map[starttls.Protocol]string{starttls.SMTP: "220 localhost ESMTP", starttls.IMAP: "* OK ready", "pop3": "+OK ready"}
		if _, err := c.Write([]byte(greet[base] + "\r\n")); err != nil {
			t.Error(err)
			return
		}
	}
	line, err := c.ReadLine()
	if err != nil {
		t.Errorf("server: reading post-TLS command: %v", err)
		return
	}
	var reply string
	switch base {
	case starttls.SMTP, starttls.Submission, starttls.LMTP:
		reply = "250-localhost\r\n250 AUTH PLAIN\r\n"
	case starttls.IMAP:
		tag, _, _ := strings.Cut(line, " ")
		reply = "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n"
	default:
		reply = "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n"
	}
	if _, err := c.Write([]byte(reply)); err != nil {
		t.Error(err)
	}
}

// acceptOnLoopback listens on loopback until the test ends, accepts one
// connection, runs Accept on it as proto with cfg and hands serve the
// result, or the listener's error with a nil Conn. Each test signals its
// end from serve at the point its assertions need.
func acceptOnLoopback(t *testing.T, ctx context.Context, proto starttls.Protocol, cfg *starttls.ServerConfig, serve func(*starttls.Conn, error)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			serve(nil, err)
			return
		}
		serve(starttls.Accept(ctx, conn, proto, cfg))
	}()
	return l.Addr().String()
}

func TestRoundTrip(t *testing.T) {
	pki := newPKI(t)
	for _, p := range []starttls.Protocol{starttls.SMTP, starttls.Submission, starttls.LMTP, starttls.IMAP, starttls.POP3, starttls.SMTPS, starttls.IMAPS, starttls.POP3S} {
		t.Run(string(p), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			addr := acceptOnLoopback(t, ctx, p, &starttls.ServerConfig{TLSConfig: pki.Server}, func(c *starttls.Conn, err error) {
				if err != nil {
					done <- err
					return
				}
				postTLSCaps(t, c)
				done <- nil
				time.Sleep(50 * time.Millisecond)
				c.Close()
			})
			c, err := starttls.Dial(ctx, p, addr, &starttls.Config{TLSConfig: pki.Client})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			defer c.Close()
			if err := <-done; err != nil {
				t.Fatalf("server: %v", err)
			}
			if !c.Upgraded() || c.ConnectionState().Version < tls.VersionTLS12 {
				t.Fatalf("not upgraded: %+v", c.ConnectionState())
			}
			if !c.Capabilities.Has("AUTH") && !c.Capabilities.Has("SASL") {
				t.Errorf("post-TLS capabilities lack AUTH: %q", c.Capabilities)
			}
			if !c.Implicit {
				if c.CapabilitiesBefore.Has("AUTH") || c.CapabilitiesBefore.Has("SASL") {
					t.Errorf("server advertised AUTH before TLS: %q", c.CapabilitiesBefore)
				}
				if p == starttls.IMAP && !c.CapabilitiesBefore.Has("LOGINDISABLED") {
					t.Errorf("IMAP server did not advertise LOGINDISABLED before TLS: %q", c.CapabilitiesBefore)
				}
			}
			if c.Greeting == "" || len(c.Transcript) < 3 {
				t.Errorf("greeting %q, transcript %d lines", c.Greeting, len(c.Transcript))
			}
		})
	}
}

// Config.Dial opens the connection when set (a scanner's rate limit, a
// test's router); its error is the connect phase's, typed as any other.
func TestConfigDial(t *testing.T) {
	pki := newPKI(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		c, err := starttls.Accept(ctx, conn, starttls.SMTP, &starttls.ServerConfig{TLSConfig: pki.Server})
		if err != nil {
			return
		}
		postTLSCaps(t, c)
		time.Sleep(50 * time.Millisecond)
		c.Close()
	}()
	var dialled []string
	cfg := &starttls.Config{TLSConfig: pki.Client, Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		dialled = append(dialled, addr)
		if _, ok := ctx.Deadline(); !ok {
			t.Error("Dial's context has no phase deadline")
		}
		// The name is dialled as given; the router sends it to the listener.
		var d net.Dialer
		return d.DialContext(ctx, network, l.Addr().String())
	}}
	c, err := starttls.Dial(ctx, starttls.SMTP, "127.0.0.1:25", cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if len(dialled) != 1 || dialled[0] != "127.0.0.1:25" {
		t.Errorf("Dial called with %q", dialled)
	}
	refused := &starttls.Config{Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("routed nowhere")}
	}}
	_, err = starttls.Dial(ctx, starttls.SMTP, "127.0.0.1:25", refused)
	var pe *starttls.ProtocolError
	if !errors.As(err, &pe) || pe.Phase != starttls.PhaseConnect {
		t.Errorf("a failing Dial: %v, want a connect-phase ProtocolError", err)
	}
}
