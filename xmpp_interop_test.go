package starttls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
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
	out, _ := peer.Talk(t, 20*time.Second, func(_ context.Context, in io.Writer, out *peer.Buffer) {
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
	}, name, args...)
	return out
}

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

// openssl s_client and gnutls-cli against our implicit-TLS XMPP halves
// (xmpps, xmpps-server: XEP-0368 direct TLS): the handshake first,
// verified, then the client's stream header and our features inside TLS.
func TestXMPPServerImplicitWithOpenSSLAndGnuTLS(t *testing.T) {
	bins := peer.Require(t, "openssl", "gnutls-cli")
	for _, tc := range []struct {
		proto  starttls.Protocol
		header string
	}{
		{starttls.XMPPS, xmppRestart},
		{starttls.XMPPSServer, strings.Replace(xmppRestart, "jabber:client", "jabber:server", 1)},
	} {
		t.Run(string(tc.proto)+"/openssl", func(t *testing.T) {
			port, ca, _ := xmppServed(t, tc.proto)
			out := xmppTalk(t, "xmpp-bind", tc.header, bins["openssl"], "s_client", "-connect", "127.0.0.1:"+port,
				"-CAfile", ca, "-verify_return_error", "-verify_hostname", "localhost", "-servername", "localhost", "-ign_eof")
			for _, want := range []string{"Verify return code: 0 (ok)", "urn:ietf:params:xml:ns:xmpp-bind"} {
				if !strings.Contains(out, want) {
					t.Errorf("openssl s_client against %s: output lacks %q:\n%s", tc.proto, want, out)
				}
			}
		})
		t.Run(string(tc.proto)+"/gnutls-cli", func(t *testing.T) {
			port, ca, _ := xmppServed(t, tc.proto)
			out := xmppTalk(t, "xmpp-bind", tc.header, bins["gnutls-cli"], "--x509cafile", ca, "-p", port, "localhost")
			for _, want := range []string{"Handshake was completed", "urn:ietf:params:xml:ns:xmpp-bind"} {
				if !strings.Contains(out, want) {
					t.Errorf("gnutls-cli against %s: output lacks %q:\n%s", tc.proto, want, out)
				}
			}
			if strings.Contains(out, "Certificate is NOT trusted") {
				t.Errorf("gnutls-cli did not trust the chain:\n%s", out)
			}
		})
	}
}

// s2sListen listens on port 5269 of a loopback address of its own
// (127.0.0.61 to .70): Prosody dials a remote domain that is an IP literal
// on that address's default s2s port, with no DNS involved.
func s2sListen(t *testing.T) (net.Listener, string) {
	t.Helper()
	var errs []string
	for n := 61; n <= 70; n++ {
		ip := fmt.Sprintf("127.0.0.%d", n)
		l, err := net.Listen("tcp", ip+":5269")
		if err == nil {
			return l, ip
		}
		errs = append(errs, err.Error())
	}
	peer.Unavailable(t, "no loopback address with port 5269 free: "+strings.Join(errs, "; "))
	return nil, ""
}

// Prosody dials our xmpp-server (s2s) half: a user of Prosody's mail.test
// sends a message (go-sendxmpp over c2s) to a JID at an IP-literal domain
// where our server listens; Prosody opens a jabber:server stream, finds
// <starttls/> required in our features, upgrades and restarts the stream
// inside TLS. The domain is in s2s_secure_domains, so Prosody insists on a
// valid chain: ours (a leaf from the CA it trusts) passes, a leaf from
// another CA is found invalid and the stream closed.
func TestXMPPServerProsodyDialsUs(t *testing.T) {
	bins := peer.Require(t, "go-sendxmpp")
	var lists []net.Listener
	var ips []string
	for i := 0; i < 2; i++ {
		l, ip := s2sListen(t)
		defer l.Close()
		lists, ips = append(lists, l), append(ips, ip)
	}
	ps := peer.StartProsody(t, peer.ProsodyOptions{DialOut: true,
		Conf: []string{fmt.Sprintf("s2s_secure_domains = { %q, %q }", ips[0], ips[1])}})
	t.Logf("Prosody %s", ps.Version)
	ps.Register(t, "alice", "mail.test", "secret")
	other, err := certs.NewCA("not Prosody's CA")
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		name  string
		ca    *certs.CA
		valid bool
	}{{"trusted", ps.CA, true}, {"untrusted", other, false}} {
		t.Run(tc.name, func(t *testing.T) {
			l, ip := lists[i], ips[i]
			leaf, err := tc.ca.Issue(certs.LeafOptions{Hosts: []string{ip}})
			if err != nil {
				t.Fatal(err)
			}
			r := s2sServeOne(t, l, ip, leaf.TLS, func() {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				defer cancel()
				cmd := exec.CommandContext(ctx, bins["go-sendxmpp"], "-u", "alice@mail.test", "-p", "secret", "-j", ps.C2SAddr, "--timeout", "5", "bob@"+ip)
				cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ps.CAFile, "HOME="+t.TempDir())
				cmd.Stdin = strings.NewReader("hello over s2s\n")
				cmd.WaitDelay = 2 * time.Second
				if out, err := cmd.CombinedOutput(); err != nil {
					t.Errorf("go-sendxmpp: %v\n%s\n%s", err, out, ps.Log())
				}
			})
			if r.err != nil {
				t.Fatalf("Prosody's connection failed before TLS ended: %v\n%s", r.err, ps.Log())
			}
			if !r.st.HandshakeComplete || r.st.Version < tls.VersionTLS12 {
				t.Errorf("TLS state %+v", r.st)
			}
			h := r.header
			if !strings.Contains(h, "<stream:stream") || !strings.Contains(h, "jabber:server") || !strings.Contains(h, "from='mail.test'") || !strings.Contains(h, "to='"+ip+"'") {
				t.Errorf("stream header inside TLS: %q", h)
			}
			log := ps.Log()
			want := "certificate chain validation result: invalid"
			if tc.valid {
				want = "certificate chain validation result: valid"
			}
			if !strings.Contains(log, want) {
				t.Errorf("Prosody's log lacks %q:\n%s", want, log)
			}
			if !tc.valid && !strings.Contains(r.after, "not-authorized") {
				t.Errorf("Prosody went on with an untrusted certificate; it sent %q", r.after)
			}
			if tc.valid && strings.Contains(r.after, "not-authorized") {
				t.Errorf("Prosody refused a trusted certificate: %q\n%s", r.after, log)
			}
		})
	}
}

type s2sResult struct {
	st            tls.ConnectionState
	header, after string
	err           error
}

// s2sServeOne serves one s2s connection on l with our server half, runs
// trigger, and returns what the dialing server did: the TLS state, its
// stream header inside TLS and what it sent after our answering header
// and empty features.
func s2sServeOne(t *testing.T, l net.Listener, ip string, cert tls.Certificate, trigger func()) s2sResult {
	t.Helper()
	res := make(chan s2sResult, 4)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &starttls.Server{
		Protocol: starttls.XMPPServer,
		Config:   starttls.ServerConfig{TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}}, Hostname: ip, PhaseTimeout: 10 * time.Second},
		Handler: func(_ context.Context, c *starttls.Conn) {
			defer c.Close()
			r := s2sResult{st: c.ConnectionState()}
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			var got []byte
			buf := make([]byte, 4096)
			read := func(done func([]byte) bool) {
				for i := 0; i < 16 && len(got) < 16<<10 && !done(got); i++ {
					n, err := c.Read(buf)
					got = append(got, buf[:n]...)
					if err != nil {
						return
					}
				}
			}
			// The stream restarted inside TLS: read until its header is complete.
			read(func(b []byte) bool {
				i := bytes.Index(b, []byte("<stream:stream"))
				return i >= 0 && bytes.IndexByte(b[i:], '>') >= 0
			})
			r.header, got = string(got), nil
			_, _ = io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams'"+
				" xmlns:db='jabber:server:dialback' from='"+ip+"' to='mail.test' id='s2s-interop' version='1.0'><stream:features/>")
			// Prosody checks our certificate now; a refusal is a stream error.
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			read(func(b []byte) bool { return bytes.Contains(b, []byte("</stream:stream>")) })
			r.after = string(got)
			res <- r
		},
		OnError: func(_ net.Addr, err error) { res <- s2sResult{err: err} },
	}
	served := make(chan struct{})
	go func() { _ = srv.Serve(ctx, l); close(served) }()
	defer func() { cancel(); <-served }()
	trigger()
	select {
	case r := <-res:
		return r
	case <-time.After(30 * time.Second):
		t.Fatalf("nobody dialed %s:5269 within 30 s", ip)
		return s2sResult{}
	}
}
