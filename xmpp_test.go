package starttls_test

// XMPP (RFC 6120 §5): the client and server halves against scripted peers
// (byte-exact dialogues and the security invariants of DESIGN.md §4), a
// round trip of our client and server, and a fuzz target for the client's
// stream-header and features parser.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

const (
	xmppNSStreams = "http://etherx.jabber.org/streams"
	xmppTLS       = "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
	xmppProceed   = "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
	xmppFailure   = "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"
	// A server's stream header (jabber:client) and features.
	xmppSrvHeader = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + xmppNSStreams + "' id='s1' from='example.test' version='1.0'>"
	xmppFeatTLS   = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><x-pre-tls xmlns='urn:test'/></stream:features>"
	xmppFeatNoTLS = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>"
	xmppFeatPost  = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>SCRAM-SHA-1</mechanism><mechanism>PLAIN</mechanism></mechanisms><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>"
	xmppHeaderEnd = "streams'>" // how our client's stream header ends
	xmppStreamErr = "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/><text xmlns='urn:ietf:params:xml:ns:xmpp-streams'>no such domain</text></stream:error></stream:stream>"
)

// xmppUntil reads what the other side sends until it ends with suffix.
func xmppUntil(p *fakePeer, suffix string) string {
	var b []byte
	for len(b) < 1<<20 {
		c, err := p.br.ReadByte()
		if err != nil {
			p.t.Errorf("reading until %q: %v (got %q)", suffix, err, b)
			return string(b)
		}
		b = append(b, c)
		if bytes.HasSuffix(b, []byte(suffix)) {
			return string(b)
		}
	}
	p.t.Errorf("no %q in %d bytes", suffix, len(b))
	return string(b)
}

// xmppToUpgrade plays a correct server up to the client's <starttls/>.
func xmppToUpgrade(p *fakePeer) {
	xmppUntil(p, xmppHeaderEnd)
	p.send(xmppSrvHeader + xmppFeatTLS)
	xmppUntil(p, xmppTLS)
}

// The whole client dialogue, byte for byte, for c2s and s2s: the stream
// header names the domain (and for s2s our name), <starttls/> is sent
// alone, the stream restarts inside TLS, and only the features read inside
// TLS are returned as Capabilities.
func TestXMPPClientDialogue(t *testing.T) {
	pki := newPKI(t)
	for _, tc := range []struct {
		proto  starttls.Protocol
		header string
	}{
		{starttls.XMPP, "<?xml version='1.0'?><stream:stream to='example.test' version='1.0' xmlns='jabber:client' xmlns:stream='" + xmppNSStreams + "'>"},
		{starttls.XMPPServer, "<?xml version='1.0'?><stream:stream to='example.test' from='client.test' version='1.0' xmlns='jabber:server' xmlns:stream='" + xmppNSStreams + "'>"},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			ns := "jabber:client"
			if tc.proto == starttls.XMPPServer {
				ns = "jabber:server"
			}
			srvHeader := strings.Replace(xmppSrvHeader, "jabber:client", ns, 1)
			got := make(chan []string, 1)
			addr := fakeServer(t, func(p *fakePeer) {
				var w []string
				w = append(w, xmppUntil(p, xmppHeaderEnd))
				p.send(srvHeader + "\n  " + xmppFeatTLS) // whitespace between elements is fine
				w = append(w, xmppUntil(p, "/>"))
				p.send(xmppProceed)
				if p = p.tls(pki.Server); p == nil {
					t.Error("handshake failed")
					got <- w
					return
				}
				w = append(w, xmppUntil(p, xmppHeaderEnd))
				p.send(srvHeader + xmppFeatPost)
				w = append(w, xmppUntil(p, ">"))
				p.send("</stream:stream>")
				got <- w
				p.rest()
			})
			cfg := clientCfg(pki)
			cfg.Domain, cfg.LocalName = "example.test", "client.test"
			cfg.TLSConfig.ServerName = "localhost"
			c, err := dialProto(t, tc.proto, addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := c.Quit(ctx); err != nil {
				t.Errorf("quit: %v", err)
			}
			want := []string{tc.header, xmppTLS, tc.header, "</stream:stream>"}
			w := <-got
			if strings.Join(w, "|") != strings.Join(want, "|") {
				t.Errorf("client wrote\n%q\nwant\n%q", w, want)
			}
			if !c.Upgraded() {
				t.Fatal("not upgraded")
			}
			for _, feat := range []string{"starttls", "starttls-required", "x-pre-tls"} {
				if !c.CapabilitiesBefore.Has(feat) {
					t.Errorf("pre-TLS features %q lack %s", c.CapabilitiesBefore, feat)
				}
				if c.Capabilities.Has(feat) {
					t.Errorf("pre-TLS feature %s survived the upgrade: %q", feat, c.Capabilities)
				}
			}
			if mechs, _ := c.Capabilities.Args("mechanisms"); strings.Join(mechs, " ") != "SCRAM-SHA-1 PLAIN" || !c.Capabilities.Has("bind") {
				t.Errorf("post-TLS features %q", c.Capabilities)
			}
			if c.Greeting != srvHeader {
				t.Errorf("Greeting %q, want the server's stream header", c.Greeting)
			}
			if len(c.Transcript) < 8 {
				t.Errorf("transcript of %d exchanges: %+v", len(c.Transcript), c.Transcript)
			}
		})
	}
}

// Invariant 3 and 5 (client): every way a server can fail to give a clean
// go-ahead is a typed error naming the condition, within the deadline,
// and the client sends nothing more in plaintext (no ClientHello either).
func TestXMPPClientInvariants(t *testing.T) {
	pki := newPKI(t)
	hdr := func(p *fakePeer) { xmppUntil(p, xmppHeaderEnd) }
	big := strings.Repeat("x", 10<<10)
	cases := []struct {
		name   string
		script func(p *fakePeer)
		class  error
		word   string
	}{
		// Stripping and refusal.
		{"not-offered", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + xmppFeatNoTLS) }, starttls.ErrNotOffered, "not offered"},
		{"empty-features", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "<stream:features/>") }, starttls.ErrNotOffered, "not offered"},
		{"starttls-in-wrong-namespace", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader + "<stream:features><starttls xmlns='urn:other'/></stream:features>")
		}, starttls.ErrNotOffered, "not offered"},
		{"pre-1.0-stream", func(p *fakePeer) {
			hdr(p)
			p.send(strings.Replace(xmppSrvHeader, " version='1.0'>", ">", 1) + "<iq type='get' id='a'/>")
		}, starttls.ErrNotOffered, "version 1.0"},
		{"failure", func(p *fakePeer) { xmppToUpgrade(p); p.send(xmppFailure + "</stream:stream>") }, starttls.ErrRefused, "failure"},
		{"stream-error-at-starttls", func(p *fakePeer) { xmppToUpgrade(p); p.send(xmppStreamErr) }, starttls.ErrRefused, "host-unknown"},
		{"stream-error-in-greeting", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + xmppStreamErr) }, starttls.ErrRefused, "no such domain"},
		{"stream-closed-at-starttls", func(p *fakePeer) { xmppToUpgrade(p); p.send("</stream:stream>") }, starttls.ErrClosed, "closed"},
		{"other-answer-to-starttls", func(p *fakePeer) { xmppToUpgrade(p); p.send("<iq type='result' id='x'/>") }, starttls.ErrProtocol, "iq"},
		{"proceed-in-wrong-namespace", func(p *fakePeer) { xmppToUpgrade(p); p.send("<proceed xmlns='urn:other'/>") }, starttls.ErrProtocol, "proceed"},
		// Response injection (invariant 1).
		{"stanza-after-proceed", func(p *fakePeer) {
			xmppToUpgrade(p)
			p.send(xmppProceed + "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>")
		}, starttls.ErrInjection, "injection"},
		{"partial-after-proceed", func(p *fakePeer) { xmppToUpgrade(p); p.send(xmppProceed + "<iq") }, starttls.ErrInjection, "injection"},
		{"whitespace-after-proceed", func(p *fakePeer) { xmppToUpgrade(p); p.send(xmppProceed + " ") }, starttls.ErrInjection, "injection"},
		{"proceed-before-starttls", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + xmppFeatTLS + xmppProceed) }, starttls.ErrInjection, "injection"},
		// Malformed streams.
		{"not-xmpp", func(p *fakePeer) { hdr(p); p.send("220 mail.test ESMTP\r\n") }, starttls.ErrProtocol, "not an xml stream"},
		{"wrong-root", func(p *fakePeer) { hdr(p); p.send("<html><body>") }, starttls.ErrProtocol, "stream header"},
		{"wrong-namespace", func(p *fakePeer) {
			hdr(p)
			p.send(strings.Replace(xmppSrvHeader, "jabber:client", "jabber:server", 1) + xmppFeatTLS)
		}, starttls.ErrProtocol, "namespace"},
		{"features-expected", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "<message/>") }, starttls.ErrProtocol, "features"},
		{"mismatched-end", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "<stream:features></starttls>") }, starttls.ErrProtocol, "malformed xml"},
		{"undefined-entity", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "<stream:features>&lol;</stream:features>") }, starttls.ErrProtocol, "malformed xml"},
		{"dtd", func(p *fakePeer) {
			hdr(p)
			p.send("<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol 'lol'><!ENTITY lol2 '&lol;&lol;&lol;'>]>" + xmppSrvHeader[len("<?xml version='1.0'?>"):])
		}, starttls.ErrProtocol, "dtd"},
		{"comment", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "<!-- hi -->" + xmppFeatTLS) }, starttls.ErrProtocol, "comment"},
		{"processing-instruction", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "<?foo bar?>" + xmppFeatTLS) }, starttls.ErrProtocol, "processing instruction"},
		{"text-at-stream-level", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "hello" + xmppFeatTLS) }, starttls.ErrProtocol, "text"},
		// Limits and deadlines (invariant 5).
		{"deep", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader + "<stream:features>" + strings.Repeat("<a>", 5000))
			p.rest()
		}, starttls.ErrProtocol, "nested"},
		{"many-elements", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader + "<stream:features>" + strings.Repeat("<a/>", 5000))
			p.rest()
		}, starttls.ErrProtocol, "elements"},
		{"huge-attribute", func(p *fakePeer) { hdr(p); p.send(xmppSrvHeader + "<stream:features a='" + big + "'/>"); p.rest() }, starttls.ErrLineTooLong, "too long"},
		{"huge-text", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader + "<stream:features><a>" + strings.Repeat(big, 1) + "</a></stream:features>")
			p.rest()
		}, starttls.ErrLineTooLong, "too long"},
		{"too-much-data", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader + "<stream:features>")
			for i := 0; i < 40; i++ {
				p.send("<a b='" + big[:4000] + "'/>")
			}
			p.rest()
		}, starttls.ErrTooMuchData, "too much"},
		{"endless-whitespace", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader)
			for i := 0; i < 100; i++ {
				p.send(strings.Repeat(" ", 1000))
			}
			p.rest()
		}, starttls.ErrTooMuchData, "too much"},
		{"silent", func(p *fakePeer) { p.rest() }, starttls.ErrTimeout, "timeout"},
		{"header-never-ends", func(p *fakePeer) { hdr(p); p.send("<?xml version='1.0'?><stream:stream xmlns='jab"); p.rest() }, starttls.ErrTimeout, "timeout"},
		{"features-never-end", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
			p.rest()
		}, starttls.ErrTimeout, "timeout"},
		{"stall-after-starttls", func(p *fakePeer) { xmppToUpgrade(p); p.rest() }, starttls.ErrTimeout, "timeout"},
		{"closes-mid-features", func(p *fakePeer) {
			hdr(p)
			p.send(xmppSrvHeader + "<stream:features><starttls")
			p.conn.Close()
		}, starttls.ErrClosed, "closed"},
		{"stall-in-handshake", func(p *fakePeer) { xmppToUpgrade(p); p.send(xmppProceed); p.rest() }, starttls.ErrTimeout, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := make(chan string, 1)
			addr := fakeServer(t, func(p *fakePeer) {
				tc.script(p)
				after <- p.rest()
			})
			cfg := clientCfg(pki)
			cfg.PhaseTimeout = 300 * time.Millisecond
			cfg.MaxPreTLSBytes = 64 << 10
			start := time.Now()
			_, err := dialProto(t, starttls.XMPP, addr, cfg)
			wantErr(t, err, tc.class, tc.word)
			var pe *starttls.ProtocolError
			if !errors.As(err, &pe) {
				t.Errorf("error %v is not a *ProtocolError", err)
			}
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %v", el)
			}
			rest := <-after
			if strings.HasPrefix(tc.name, "stall-in-handshake") {
				return // the ClientHello was due there
			}
			// Nothing after the failure: no stanza, no ClientHello.
			if rest != "" {
				t.Errorf("client sent %q after the failure", rest)
			}
		})
	}
}

// Opportunistic mode falls back for "not offered" and <failure/> only.
func TestXMPPClientOpportunistic(t *testing.T) {
	pki := newPKI(t)
	cfg := clientCfg(pki)
	cfg.Opportunistic = true
	for _, tc := range []struct {
		name   string
		script func(p *fakePeer)
		class  error
	}{
		{"not-offered", func(p *fakePeer) { xmppUntil(p, xmppHeaderEnd); p.send(xmppSrvHeader + xmppFeatNoTLS) }, starttls.ErrNotOffered},
		{"failure", func(p *fakePeer) { xmppToUpgrade(p); p.send(xmppFailure) }, starttls.ErrRefused},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) { tc.script(p); p.rest() })
			c, err := dialProto(t, starttls.XMPP, addr, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if c.Upgraded() || !errors.Is(c.Fallback, tc.class) {
				t.Errorf("upgraded=%v fallback=%v", c.Upgraded(), c.Fallback)
			}
		})
	}
	t.Run("injection-is-still-an-error", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) { xmppToUpgrade(p); p.send(xmppProceed + "<iq/>"); p.rest() })
		_, err := dialProto(t, starttls.XMPP, addr, cfg)
		wantErr(t, err, starttls.ErrInjection, "injection")
	})
}

// xmppClientHello opens a stream as a client would; it returns what the
// server answered up to the end of its features.
func xmppClientHello(p *fakePeer, header string) string {
	p.send(header)
	return xmppUntil(p, "</stream:features>")
}

const xmppCliHeader = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' xmlns='jabber:client' xmlns:stream='" + xmppNSStreams + "'>"

// The server's half: header and features by policy (invariant 4: no SASL
// mechanisms before TLS under Required, <required/> on starttls), the
// go-ahead byte for byte, and a TLS session whose first bytes are what the
// client sent inside TLS.
func TestXMPPServerDialogue(t *testing.T) {
	pki := newPKI(t)
	for _, policy := range []starttls.ServerPolicy{starttls.Required, starttls.Optional} {
		for _, proto := range []starttls.Protocol{starttls.XMPP, starttls.XMPPServer} {
			name := string(proto) + map[starttls.ServerPolicy]string{starttls.Required: "/required", starttls.Optional: "/optional"}[policy]
			t.Run(name, func(t *testing.T) {
				cfg := serverCfg(pki)
				cfg.Policy = policy
				cfg.Capabilities = []string{"AUTH PLAIN", "SASL SCRAM-SHA-1", "SIZE 1000"}
				p, res := acceptOne(t, proto, cfg)
				ns := "jabber:client"
				header := xmppCliHeader
				if proto == starttls.XMPPServer {
					ns = "jabber:server"
					header = strings.Replace(strings.Replace(header, "jabber:client", ns, 1), "to='localhost'", "to='localhost' from='peer.test'", 1)
				}
				got := xmppClientHello(p, header+"\n")
				for _, want := range []string{"<?xml version='1.0'?><stream:stream xmlns='" + ns + "'", "from='localhost'", "version='1.0'", "<stream:features>"} {
					if !strings.Contains(got, want) {
						t.Errorf("server header and features %q lack %q", got, want)
					}
				}
				hasMechs := strings.Contains(got, "<mechanism>PLAIN</mechanism><mechanism>SCRAM-SHA-1</mechanism>")
				if policy == starttls.Required {
					if !strings.Contains(got, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>") || strings.Contains(got, "mechanism") {
						t.Errorf("required policy features: %q", got)
					}
				} else if !strings.Contains(got, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'></starttls>") || !hasMechs {
					t.Errorf("optional policy features: %q", got)
				}
				if proto == starttls.XMPPServer && !strings.Contains(got, "to='peer.test'") {
					t.Errorf("s2s header does not answer to the peer: %q", got)
				}
				p.send(xmppTLS)
				if b := xmppUntil(p, "/>"); b != xmppProceed {
					t.Errorf("go-ahead %q, want %q", b, xmppProceed)
				}
				tc := tls.Client(p.conn, &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "localhost"})
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				a := wait(t, res)
				if a.err != nil {
					t.Fatal(a.err)
				}
				if !a.conn.Upgraded() || len(a.conn.Events) != 0 {
					t.Fatalf("upgraded=%v events=%+v", a.conn.Upgraded(), a.conn.Events)
				}
				if proto == starttls.XMPPServer && a.conn.ClientName != "peer.test" {
					t.Errorf("ClientName %q, want the stream's from", a.conn.ClientName)
				}
				if _, err := tc.Write([]byte(header)); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, len(header))
				_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				if _, err := io.ReadFull(a.conn, buf); err != nil || string(buf) != header {
					t.Errorf("application read %q, %v; want the restarted stream", buf, err)
				}
			})
		}
	}
}

// Invariant 1 (server): <starttls/> with a stanza pipelined in the same
// write is closed without <proceed/> (Close) or upgraded with the stanza
// dropped (Discard); either way an event carries the stanza.
func TestXMPPServerCommandInjection(t *testing.T) {
	pki := newPKI(t)
	const inj = "<iq type='get' id='evil'><query xmlns='jabber:iq:roster'/></iq>"
	t.Run("close", func(t *testing.T) {
		p, res := acceptOne(t, starttls.XMPP, serverCfg(pki))
		xmppClientHello(p, xmppCliHeader)
		p.send(xmppTLS + inj)
		if rest := p.rest(); rest != "" {
			t.Errorf("server answered %q to a pipelined STARTTLS", rest)
		}
		a := wait(t, res)
		wantErr(t, a.err, starttls.ErrInjection, "injection")
		if len(a.events) != 1 || a.events[0].Kind != starttls.EventCommandInjection || string(a.events[0].Data) != inj {
			t.Errorf("events %+v, want one command-injection with the stanza", a.events)
		}
	})
	t.Run("discard", func(t *testing.T) {
		cfg := serverCfg(pki)
		cfg.Injection = starttls.Discard
		p, res := acceptOne(t, starttls.XMPP, cfg)
		xmppClientHello(p, xmppCliHeader)
		p.send(xmppTLS + inj)
		if b := xmppUntil(p, "/>"); b != xmppProceed {
			t.Errorf("go-ahead %q", b)
		}
		tc := tls.Client(p.conn, &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		a := wait(t, res)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if len(a.conn.Events) != 1 || a.conn.Events[0].Kind != starttls.EventCommandInjection {
			t.Errorf("Conn.Events %+v", a.conn.Events)
		}
		if _, err := tc.Write([]byte("<first-in-tls/>")); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len("<first-in-tls/>"))
		_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(a.conn, buf); err != nil || string(buf) != "<first-in-tls/>" {
			t.Errorf("application read %q, %v", buf, err)
		}
	})
	// gnutls-cli ends <starttls/> with a newline: whitespace is no stanza.
	t.Run("trailing-newline-is-not-injection", func(t *testing.T) {
		p, res := acceptOne(t, starttls.XMPP, serverCfg(pki))
		xmppClientHello(p, xmppCliHeader+"\n")
		p.send(xmppTLS + "\n")
		if b := xmppUntil(p, "/>"); b != xmppProceed {
			t.Errorf("go-ahead %q", b)
		}
		tc := tls.Client(p.conn, &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "localhost"})
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		if a := wait(t, res); a.err != nil || len(a.events) != 0 {
			t.Errorf("err %v events %+v", a.err, a.events)
		}
	})
}

// Under Required, anything but <starttls/> ends the stream with
// <policy-violation/>; under Optional the stanza and the rest of the
// plaintext stream go to the application.
func TestXMPPServerPolicies(t *testing.T) {
	pki := newPKI(t)
	const auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGFsaWNlAHNlY3JldA==</auth>"
	t.Run("required", func(t *testing.T) {
		p, res := acceptOne(t, starttls.XMPP, serverCfg(pki))
		xmppClientHello(p, xmppCliHeader)
		p.send(auth)
		rest := p.rest()
		if !strings.Contains(rest, "<stream:error><policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>") || !strings.HasSuffix(rest, "</stream:stream>") {
			t.Errorf("server answered %q, want a policy-violation stream error", rest)
		}
		a := wait(t, res)
		wantErr(t, a.err, starttls.ErrProtocol, "before starttls")
	})
	t.Run("optional-handoff", func(t *testing.T) {
		cfg := serverCfg(pki)
		cfg.Policy = starttls.Optional
		p, res := acceptOne(t, starttls.XMPP, cfg)
		xmppClientHello(p, xmppCliHeader)
		p.send(" " + auth)
		a := wait(t, res)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.conn.Upgraded() {
			t.Fatal("handed-off session claims TLS")
		}
		p.send("<next/>")
		buf := make([]byte, len(auth)+len("<next/>"))
		_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(a.conn, buf); err != nil || string(buf) != auth+"<next/>" {
			t.Errorf("application read %q, %v; want the stanza and what follows", buf, err)
		}
	})
}

// A bad stream header gets our header and a stream error with the RFC 6120
// condition, and Accept fails with a protocol error.
func TestXMPPServerBadHeaders(t *testing.T) {
	pki := newPKI(t)
	cases := []struct{ name, send, cond string }{
		{"wrong-domain", strings.Replace(xmppCliHeader, "to='localhost'", "to='other.test'", 1), "host-unknown"},
		{"wrong-namespace", strings.Replace(xmppCliHeader, "jabber:client", "jabber:server", 1), "invalid-namespace"},
		{"no-version", strings.Replace(xmppCliHeader, " version='1.0' xmlns", " xmlns", 1), "unsupported-version"},
		{"not-xml", "EHLO client.test\r\n", "not-well-formed"},
		{"not-a-stream", "<html>", "bad-format"},
		{"dtd", "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>", "restricted-xml"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, res := acceptOne(t, starttls.XMPP, serverCfg(pki))
			p.send(tc.send)
			rest := p.rest()
			if !strings.HasPrefix(rest, "<?xml version='1.0'?><stream:stream ") || !strings.Contains(rest, "<stream:error><"+tc.cond+" ") || strings.Contains(rest, "starttls") {
				t.Errorf("server answered %q, want its header and <%s/>", rest, tc.cond)
			}
			a := wait(t, res)
			wantErr(t, a.err, starttls.ErrProtocol, "")
		})
	}
	t.Run("client-closes-stream", func(t *testing.T) {
		p, res := acceptOne(t, starttls.XMPP, serverCfg(pki))
		xmppClientHello(p, xmppCliHeader)
		p.send("</stream:stream>")
		if rest := p.rest(); rest != "</stream:stream>" {
			t.Errorf("server answered %q", rest)
		}
		wantErr(t, wait(t, res).err, starttls.ErrClosed, "closed")
	})
}

// Invariant 5 (server): limits and deadlines, each a typed error in time.
func TestXMPPServerHostileClients(t *testing.T) {
	pki := newPKI(t)
	cases := []hostileClient{
		{"silent", nil, func(p *fakePeer) { p.rest() }, starttls.ErrTimeout},
		{"slowloris", nil, func(p *fakePeer) {
			for i := 0; i < 40; i++ {
				if _, err := p.conn.Write([]byte(xmppCliHeader[i : i+1])); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}, starttls.ErrTimeout},
		{"stall-before-starttls", nil, func(p *fakePeer) { xmppClientHello(p, xmppCliHeader); p.rest() }, starttls.ErrTimeout},
		{"huge-attribute", nil, func(p *fakePeer) { p.send("<stream:stream a='" + strings.Repeat("x", 100<<10) + "'>"); p.rest() }, starttls.ErrLineTooLong},
		{"deep", nil, func(p *fakePeer) {
			xmppClientHello(p, xmppCliHeader)
			p.send(strings.Repeat("<a>", 10000))
			p.rest()
		}, starttls.ErrProtocol},
		{"byte-budget", func(c *starttls.ServerConfig) { c.MaxPreTLSBytes = 4096 }, func(p *fakePeer) {
			xmppClientHello(p, xmppCliHeader)
			p.send("<a>")
			for i := 0; i < 100; i++ {
				p.send("<b c='" + strings.Repeat("z", 100) + "'/>")
			}
			p.rest()
		}, starttls.ErrTooMuchData},
		{"garbage-tls", nil, func(p *fakePeer) {
			xmppClientHello(p, xmppCliHeader)
			p.send(xmppTLS)
			xmppUntil(p, "/>")
			p.send("\x16\x03\x01\x00\x10this is no ClientHello")
			p.rest()
		}, starttls.ErrHandshake},
		{"stall-in-handshake", nil, func(p *fakePeer) {
			xmppClientHello(p, xmppCliHeader)
			p.send(xmppTLS)
			xmppUntil(p, "/>")
			p.rest()
		}, starttls.ErrTimeout},
	}
	runHostileClients(t, pki, starttls.XMPP, cases, 3*time.Second)
	for _, proto := range []starttls.Protocol{starttls.XMPPS, starttls.XMPPSServer} {
		t.Run(string(proto)+"/rejects-plaintext", func(t *testing.T) {
			p, res := acceptOne(t, proto, serverCfg(pki))
			p.send(xmppCliHeader)
			wantErr(t, wait(t, res).err, starttls.ErrHandshake, "handshake")
		})
	}
}

// xmppServerApp answers the client's restarted (or, for implicit TLS,
// first) stream as an application would, and the closing of the stream.
func xmppServerApp(t *testing.T, c *starttls.Conn, ns string) {
	p := newFakePeer(t, c)
	xmppUntil(p, xmppHeaderEnd)
	p.send(strings.Replace(xmppSrvHeader, "jabber:client", ns, 1) + xmppFeatPost)
	xmppUntil(p, "</stream:stream>")
	p.send("</stream:stream>")
}

// Our client against our server, for every XMPP protocol.
func TestXMPPRoundTrip(t *testing.T) {
	pki := newPKI(t)
	for _, proto := range []starttls.Protocol{starttls.XMPP, starttls.XMPPServer, starttls.XMPPS, starttls.XMPPSServer} {
		t.Run(string(proto), func(t *testing.T) {
			info, err := starttls.Lookup(proto)
			if err != nil {
				t.Fatal(err)
			}
			ns := "jabber:client"
			if info.Base == starttls.XMPPServer {
				ns = "jabber:server"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			addr := acceptOnLoopback(t, ctx, proto, &starttls.ServerConfig{TLSConfig: pki.Server, Capabilities: []string{"AUTH PLAIN"}}, func(c *starttls.Conn, err error) {
				if err != nil {
					done <- err
					return
				}
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				xmppServerApp(t, c, ns)
				done <- nil
			})
			c, err := starttls.Dial(ctx, proto, addr, &starttls.Config{TLSConfig: pki.Client, Domain: "localhost"})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if !c.Upgraded() || c.ConnectionState().Version < tls.VersionTLS12 || c.Implicit != info.Implicit {
				t.Fatalf("not upgraded: %+v", c.ConnectionState())
			}
			if !info.Implicit && (!c.CapabilitiesBefore.Has("starttls-required") || c.CapabilitiesBefore.Has("mechanisms")) {
				t.Errorf("pre-TLS features %q", c.CapabilitiesBefore)
			}
			if !c.Capabilities.Has("mechanisms") || c.Capabilities.Has("starttls") {
				t.Errorf("post-TLS features %q", c.Capabilities)
			}
			if err := c.Quit(ctx); err != nil {
				t.Errorf("quit: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("server: %v", err)
			}
		})
	}
}

// FuzzXMPPFeatures feeds arbitrary bytes to the client as the server's
// stream header and features (and whatever follows): the client must end
// with a *ProtocolError, never panic, hang or succeed.
func FuzzXMPPFeatures(f *testing.F) {
	for _, s := range []string{
		xmppSrvHeader + xmppFeatTLS + xmppProceed,
		xmppSrvHeader + xmppFeatTLS + xmppFailure,
		xmppSrvHeader + xmppFeatNoTLS,
		xmppSrvHeader + xmppStreamErr,
		xmppSrvHeader + "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>X</mechanism></mechanisms><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='n' ver='v'/></stream:features>",
		"<stream:stream xmlns='jabber:client' xmlns:stream='" + xmppNSStreams + "'><iq/>",
		"<?xml version='1.0' encoding='UTF-16'?><stream:stream>",
		"<a:stream xmlns:a='" + xmppNSStreams + "' xmlns='jabber:client' version='1.0'><a:features/>",
		xmppSrvHeader + "<stream:features>" + strings.Repeat("<a>", 40),
		"<!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cli, srv := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			drained := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, srv); close(drained) }()
			_, _ = srv.Write(data)
			srv.Close()
			<-drained
		}()
		defer func() { <-done }()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		cfg := &starttls.Config{Domain: "localhost", PhaseTimeout: 500 * time.Millisecond, MaxPreTLSBytes: 16 << 10,
			MaxLineLength: 1024, TLSConfig: &tls.Config{ServerName: "localhost"}}
		start := time.Now()
		c, err := starttls.Client(ctx, cli, starttls.XMPP, cfg)
		if err == nil {
			c.Close()
			t.Fatalf("client succeeded against %q", data)
		}
		var pe *starttls.ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v (%T) is not a *ProtocolError", err, err)
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("took %v", el)
		}
	})
}
