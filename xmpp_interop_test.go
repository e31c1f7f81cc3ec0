package starttls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// Our XMPP client against Prosody, and our XMPP server against the
// STARTTLS clients of openssl and gnutls-cli; verification on everywhere.

func xmppDialProsody(t *testing.T, p starttls.Protocol, addr string, ps *peer.Prosody, cfg starttls.Config) (*starttls.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if cfg.TLSConfig == nil {
		cfg.TLSConfig = &tls.Config{RootCAs: ps.CA.Pool(), ServerName: "mail.test"}
	}
	if cfg.Domain == "" {
		cfg.Domain = "mail.test"
	}
	c, err := starttls.Dial(ctx, p, addr, &cfg)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

func TestInteropXMPPProsody(t *testing.T) {
	ps := peer.StartProsody(t, peer.ProsodyOptions{})
	t.Logf("Prosody %s", ps.Version)

	verified := func(t *testing.T, c *starttls.Conn) {
		t.Helper()
		st := c.ConnectionState()
		if !c.Upgraded() || st.Version < tls.VersionTLS12 || !st.HandshakeComplete || len(st.VerifiedChains) == 0 {
			t.Fatalf("not upgraded to verified TLS >= 1.2: %+v", st)
		}
	}

	t.Run("c2s", func(t *testing.T) {
		c, err := xmppDialProsody(t, starttls.XMPP, ps.C2SAddr, ps, starttls.Config{})
		if err != nil {
			t.Fatalf("%v\n%s", err, ps.Log())
		}
		verified(t, c)
		t.Logf("before TLS %q; after %q", c.CapabilitiesBefore, c.Capabilities)
		if !c.CapabilitiesBefore.Has("starttls") || !c.CapabilitiesBefore.Has("starttls-required") {
			t.Errorf("pre-TLS features: %q", c.CapabilitiesBefore)
		}
		if mechs, _ := c.CapabilitiesBefore.Args("mechanisms"); containsFold(mechs, "PLAIN") {
			t.Errorf("Prosody offered PLAIN before TLS: %q", c.CapabilitiesBefore)
		}
		mechs, ok := c.Capabilities.Args("mechanisms")
		if c.Capabilities.Has("starttls") || !ok || !containsFold(mechs, "PLAIN") {
			t.Errorf("post-TLS features: %q", c.Capabilities)
		}
		if !strings.Contains(c.Greeting, "jabber:client") || !strings.Contains(c.Greeting, "mail.test") {
			t.Errorf("greeting (stream header) %q", c.Greeting)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.Quit(ctx); err != nil {
			t.Errorf("quit: %v", err)
		}
	})

	t.Run("xmpps", func(t *testing.T) {
		c, err := xmppDialProsody(t, starttls.XMPPS, ps.C2SDirectAddr, ps, starttls.Config{})
		if err != nil {
			t.Fatalf("%v\n%s", err, ps.Log())
		}
		verified(t, c)
		if mechs, _ := c.Capabilities.Args("mechanisms"); !containsFold(mechs, "PLAIN") {
			t.Errorf("features inside direct TLS: %q", c.Capabilities)
		}
	})

	for _, tc := range []struct {
		proto starttls.Protocol
		addr  string
	}{{starttls.XMPPServer, ps.S2SAddr}, {starttls.XMPPSServer, ps.S2SDirectAddr}} {
		t.Run(string(tc.proto), func(t *testing.T) {
			c, err := xmppDialProsody(t, tc.proto, tc.addr, ps, starttls.Config{LocalName: "remote.test"})
			if err != nil {
				t.Fatalf("%v\n%s", err, ps.Log())
			}
			verified(t, c)
			t.Logf("before TLS %q; after %q", c.CapabilitiesBefore, c.Capabilities)
			if tc.proto == starttls.XMPPServer && (!c.CapabilitiesBefore.Has("starttls") || !c.CapabilitiesBefore.Has("starttls-required")) {
				t.Errorf("pre-TLS s2s features: %q", c.CapabilitiesBefore)
			}
			// Inside TLS Prosody offers server dialback (and no STARTTLS).
			if c.Capabilities.Has("starttls") || !c.Capabilities.Has("dialback") {
				t.Errorf("post-TLS s2s features: %q", c.Capabilities)
			}
			if !strings.Contains(c.Greeting, "jabber:server") {
				t.Errorf("greeting (stream header) %q", c.Greeting)
			}
		})
	}

	t.Run("wrong-name", func(t *testing.T) {
		_, err := xmppDialProsody(t, starttls.XMPP, ps.C2SAddr, ps, starttls.Config{TLSConfig: &tls.Config{RootCAs: ps.CA.Pool(), ServerName: "other.test"}})
		if !errors.Is(err, starttls.ErrCertificate) {
			t.Errorf("want a certificate error, got %v", err)
		}
	})
	t.Run("unknown-domain", func(t *testing.T) {
		_, err := xmppDialProsody(t, starttls.XMPP, ps.C2SAddr, ps, starttls.Config{Domain: "unknown.test"})
		wantErr(t, err, starttls.ErrRefused, "host-unknown")
	})
}

func containsFold(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

// xmppApp is the application behind our server after the upgrade: it
// reads the client's restarted stream header and answers with post-TLS
// features, then echoes the end of the stream.
func xmppApp(_ context.Context, c *starttls.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	dec := xml.NewDecoder(c)
	for {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local == "stream" {
			ns := "jabber:client"
			for _, a := range se.Attr {
				if a.Name.Local == "xmlns" && a.Name.Space == "" {
					ns = a.Value
				}
			}
			_, _ = io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='"+ns+"' xmlns:stream='http://etherx.jabber.org/streams' id='app1' from='localhost' version='1.0'>"+
				"<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"+
				"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>")
		}
		if ee, ok := tok.(xml.EndElement); ok && ee.Name.Local == "stream" {
			_, _ = io.WriteString(c, "</stream:stream>")
			return
		}
	}
}

// xmppServed runs our server on loopback and returns its port and the CA file.
func xmppServed(t *testing.T, p starttls.Protocol) (port, caFile string, events func() []starttls.Event) {
	t.Helper()
	pki := newPKI(t)
	caFile = writeCAFile(t, pki)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var ev []starttls.Event
	srv := &starttls.Server{Protocol: p, Config: starttls.ServerConfig{TLSConfig: pki.Server, PhaseTimeout: 10 * time.Second,
		OnEvent: func(_ net.Addr, e starttls.Event) { mu.Lock(); ev = append(ev, e); mu.Unlock() }},
		Handler: xmppApp,
		OnError: func(_ net.Addr, err error) { t.Logf("server: %v", err) }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx, l) }()
	t.Cleanup(func() { cancel(); <-done })
	_, port, _ = net.SplitHostPort(l.Addr().String())
	return port, caFile, func() []starttls.Event { mu.Lock(); defer mu.Unlock(); return append([]starttls.Event(nil), ev...) }
}

func writeCAFile(t *testing.T, pki *testPKI) string {
	t.Helper()
	f, err := pki.CA.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// xmppTalk runs a client command, writes stdin after a pause and keeps
// stdin open until the output shows want (or 10 s pass).
func xmppTalk(t *testing.T, want, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out xmppSyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer in.Close()
		for i := 0; i < 100 && !strings.Contains(out.String(), "erif") && !strings.Contains(out.String(), "Handshake was completed"); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond)
		if _, err := io.WriteString(in, stdin); err != nil {
			return
		}
		for i := 0; i < 200 && !strings.Contains(out.String(), want); i++ {
			time.Sleep(50 * time.Millisecond)
		}
		// End the stream: the application answers and closes, and the
		// client exits.
		_, _ = io.WriteString(in, "</stream:stream>\n")
		time.Sleep(200 * time.Millisecond)
	}()
	_ = cmd.Wait()
	return out.String()
}

type xmppSyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *xmppSyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *xmppSyncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

const xmppRestart = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>\n"

func TestXMPPServerWithOpenSSL(t *testing.T) {
	bins := peer.Require(t, "openssl")
	for _, tc := range []struct {
		proto   starttls.Protocol
		restart string
	}{
		{starttls.XMPP, xmppRestart},
		{starttls.XMPPServer, strings.Replace(xmppRestart, "jabber:client", "jabber:server", 1)},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			port, ca, events := xmppServed(t, tc.proto)
			out := xmppTalk(t, "xmpp-bind", tc.restart, bins["openssl"], "s_client", "-starttls", string(tc.proto), "-xmpphost", "localhost",
				"-connect", "127.0.0.1:"+port, "-CAfile", ca, "-verify_return_error", "-servername", "localhost", "-ign_eof")
			// The restarted stream inside TLS reaches the application.
			for _, want := range []string{"Verify return code: 0 (ok)", "urn:ietf:params:xml:ns:xmpp-bind"} {
				if !strings.Contains(out, want) {
					t.Errorf("openssl s_client -starttls %s: output lacks %q:\n%s", tc.proto, want, out)
				}
			}
			if ev := events(); len(ev) != 0 {
				t.Errorf("events %+v", ev)
			}
		})
	}
}

func TestXMPPServerWithGnuTLS(t *testing.T) {
	bins := peer.Require(t, "gnutls-cli")
	port, ca, events := xmppServed(t, starttls.XMPP)
	out := xmppTalk(t, "xmpp-bind", xmppRestart, bins["gnutls-cli"], "--starttls-proto=xmpp", "--x509cafile", ca, "-p", port, "localhost")
	for _, want := range []string{"Handshake was completed", "urn:ietf:params:xml:ns:xmpp-bind"} {
		if !strings.Contains(out, want) {
			t.Errorf("gnutls-cli --starttls-proto=xmpp: output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Certificate is NOT trusted") {
		t.Errorf("gnutls-cli did not trust the chain:\n%s", out)
	}
	if ev := events(); len(ev) != 0 {
		t.Errorf("events %+v (gnutls-cli's trailing newline is whitespace, not an injection)", ev)
	}
}
