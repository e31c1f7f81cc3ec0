package starttls_test

// PostgreSQL SSLRequest negotiation: client and server halves against
// scripted peers on loopback, the injection cases of CVE-2021-23222
// (client) and CVE-2021-23214 (server), and a fuzz target for the client.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/postgres"
)

var pgSSLRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// pgStartup builds a protocol 3.0 StartupMessage.
func pgStartup(params ...string) []byte {
	body := []byte{0, 3, 0, 0}
	for _, p := range params {
		body = append(append(body, p...), 0)
	}
	body = append(body, 0)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...)
}

// pgErrorResponse builds an ErrorResponse as a server would.
func pgErrorResponse(fields ...string) []byte {
	var body []byte
	for _, f := range fields {
		body = append(append(body, f...), 0)
	}
	body = append(body, 0)
	return append(append([]byte{'E'}, binary.BigEndian.AppendUint32(nil, uint32(len(body)+4))...), body...)
}

// expectSSLRequest reads the client's first 8 bytes and checks them.
func (p *fakePeer) expectSSLRequest() bool {
	var b [8]byte
	if _, err := io.ReadFull(p.br, b[:]); err != nil {
		p.t.Errorf("reading SSLRequest: %v", err)
		return false
	}
	if !bytes.Equal(b[:], pgSSLRequest) {
		p.t.Errorf("client sent %x, want SSLRequest %x", b, pgSSLRequest)
		return false
	}
	return true
}

func TestPostgresRegistered(t *testing.T) {
	for _, tc := range []struct {
		p        starttls.Protocol
		implicit bool
	}{{starttls.Postgres, false}, {starttls.PostgresDirect, true}} {
		info, err := starttls.Lookup(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if info.DefaultPort != 5432 || info.Implicit != tc.implicit || info.Base != starttls.Postgres || !info.Server {
			t.Errorf("%s: %+v", tc.p, info)
		}
	}
}

// Our client against our server: SSLRequest, 'S', TLS, then the
// application's StartupMessage arrives intact inside TLS.
func TestPostgresRoundTrip(t *testing.T) {
	pki := newPKI(t)
	for _, proto := range []starttls.Protocol{starttls.Postgres, starttls.PostgresDirect} {
		t.Run(string(proto), func(t *testing.T) {
			// Direct SSL needs ALPN "postgresql": the protocol sets it on
			// both sides, so the configurations here do not.
			cli := clientCfg(pki)
			scfg := serverCfg(pki)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := make(chan []byte, 1)
			errc := make(chan error, 1)
			go func() {
				conn, err := l.Accept()
				if err != nil {
					errc <- err
					return
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := starttls.Accept(ctx, conn, proto, &scfg)
				if err != nil {
					errc <- err
					return
				}
				defer c.Close()
				if !c.Upgraded() {
					errc <- errors.New("server side not upgraded")
					return
				}
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				b := make([]byte, len(pgStartup("user", "alice", "database", "db")))
				if _, err := io.ReadFull(c, b); err != nil {
					errc <- err
					return
				}
				got <- b
				errc <- nil
			}()
			c, err := dialProto(t, proto, l.Addr().String(), cli)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Upgraded() || c.ConnectionState().Version < tls.VersionTLS12 || c.Fallback != nil {
				t.Fatalf("not upgraded: %+v", c.ConnectionState())
			}
			if proto == starttls.PostgresDirect && c.ConnectionState().NegotiatedProtocol != postgres.ALPN {
				t.Errorf("ALPN %q", c.ConnectionState().NegotiatedProtocol)
			}
			if _, err := c.Write(pgStartup("user", "alice", "database", "db")); err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("server: %v", err)
			}
			if b := <-got; !bytes.Equal(b, pgStartup("user", "alice", "database", "db")) {
				t.Errorf("server read %q", b)
			}
			if err := c.Quit(context.Background()); err != nil {
				t.Errorf("Quit: %v", err)
			}
		})
	}
}

// The client's bytes on the wire: exactly the SSLRequest, then a
// ClientHello after 'S'.
func TestPostgresClientHandshakeWithFakeServer(t *testing.T) {
	pki := newPKI(t)
	addr := fakeServer(t, func(p *fakePeer) {
		if !p.expectSSLRequest() {
			return
		}
		p.send("S")
		if p = p.tls(pki.Server); p == nil {
			t.Error("handshake failed")
			return
		}
		p.rest()
	})
	c, err := dialProto(t, starttls.Postgres, addr, clientCfg(pki))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Upgraded() {
		t.Fatal("not upgraded")
	}
	if len(c.Transcript) < 2 || c.Transcript[0].Text != "SSLRequest" || c.Transcript[1].Text != "S" {
		t.Errorf("transcript %+v", c.Transcript)
	}
}

// 'N', an ErrorResponse (old servers) are refusals; opportunistic clients
// fall back to plaintext on them; any other byte is a protocol violation.
func TestPostgresClientRefused(t *testing.T) {
	pki := newPKI(t)
	cases := []struct {
		name   string
		answer []byte
		class  error
		word   string
	}{
		{"N", []byte("N"), starttls.ErrRefused, "does not support ssl"},
		{"error-response", pgErrorResponse("SFATAL", "C08P01", "Munsupported frontend protocol 1234.5679"), starttls.ErrRefused, "unsupported frontend protocol"},
		{"error-v2", []byte("EFATAL:  unsupported frontend protocol\n\x00"), starttls.ErrRefused, "unsupported frontend protocol"},
		{"error-garbled", append([]byte{'E', 0, 0, 0, 9}, "SFATAL"...), starttls.ErrRefused, "malformed error response"},
		{"other-byte", []byte("R"), starttls.ErrProtocol, "0x52"},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), starttls.ErrProtocol, "unexpected answer"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := make(chan string, 1)
			addr := fakeServer(t, func(p *fakePeer) {
				if !p.expectSSLRequest() {
					after <- ""
					return
				}
				p.send(string(tc.answer))
				if tc.name == "N" {
					// A server that said 'N' waits for a plaintext startup;
					// the client must not send one.
					_ = p.conn.SetReadDeadline(time.Now().Add(time.Second))
					b, _ := io.ReadAll(p.br)
					after <- string(b)
					return
				}
				p.conn.(*net.TCPConn).CloseWrite()
				after <- p.rest()
			})
			_, err := dialProto(t, starttls.Postgres, addr, clientCfg(pki))
			wantErr(t, err, tc.class, tc.word)
			if rest := <-after; rest != "" {
				t.Errorf("client sent %q after the refusal", rest)
			}
		})
	}
	t.Run("opportunistic-fallback", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			if p.expectSSLRequest() {
				p.send("N")
				p.rest()
			}
		})
		cfg := clientCfg(pki)
		cfg.Opportunistic = true
		c, err := dialProto(t, starttls.Postgres, addr, cfg)
		wantFallback(t, c, err, starttls.ErrRefused)
	})
}

// wantSSLRequestInjectionClosed checks a server that got an SSLRequest
// with more behind it (command injection, Close policy): it answers
// nothing, Accept fails as injection, and one event carries what.
func wantSSLRequestInjectionClosed(t *testing.T, p *fakePeer, res <-chan accepted, what string) {
	t.Helper()
	if rest := p.rest(); rest != "" {
		t.Errorf("server answered %q to a pipelined SSLRequest", rest)
	}
	a := wait(t, res)
	wantErr(t, a.err, starttls.ErrInjection, "injection")
	if len(a.events) != 1 || a.events[0].Kind != starttls.EventCommandInjection || !bytes.Contains(a.events[0].Data, []byte(what)) {
		t.Errorf("events %+v", a.events)
	}
}

// CVE-2021-23222: bytes after 'S' in the same segment are a response
// injection; the client never starts TLS on top of them, even when
// opportunistic.
func TestPostgresClientResponseInjection(t *testing.T) {
	pki := newPKI(t)
	injections := map[string]string{
		"error-response": string(pgErrorResponse("SFATAL", "C28P01", "Mpassword authentication failed")),
		"auth-ok":        "R\x00\x00\x00\x08\x00\x00\x00\x00",
		"one-byte":       "Z",
		"second-S":       "S",
	}
	for name, inj := range injections {
		for _, opportunistic := range []bool{false, true} {
			n := name
			if opportunistic {
				n += "/opportunistic"
			}
			t.Run(n, func(t *testing.T) {
				after := make(chan string, 1)
				addr := fakeServer(t, func(p *fakePeer) {
					if !p.expectSSLRequest() {
						after <- ""
						return
					}
					p.send("S" + inj)
					after <- p.rest()
				})
				cfg := clientCfg(pki)
				cfg.Opportunistic = opportunistic
				_, err := dialProto(t, starttls.Postgres, addr, cfg)
				wantErr(t, err, starttls.ErrInjection, "injection")
				if rest := <-after; rest != "" {
					t.Errorf("client sent %d bytes (a ClientHello?) after the injected 'S'", len(rest))
				}
			})
		}
	}
	t.Run("before-sslrequest", func(t *testing.T) {
		// A server that talks first. A lone early 'S' cannot be told from
		// an answer (PostgreSQL has no greeting), but 'S' with anything
		// after it is still caught when the answer is read.
		addr := fakeServer(t, func(p *fakePeer) {
			p.send("SZ")
			p.rest()
		})
		_, err := dialProto(t, starttls.Postgres, addr, clientCfg(pki))
		wantErr(t, err, starttls.ErrInjection, "injection")
	})
}

// Stalls, drips and closures give typed errors within the phase deadline.
func TestPostgresClientHostile(t *testing.T) {
	pki := newPKI(t)
	cases := []struct {
		name   string
		script func(p *fakePeer)
		class  error
		word   string
	}{
		{"silent", func(p *fakePeer) { p.rest() }, starttls.ErrTimeout, "timeout"},
		{"closes", func(p *fakePeer) { p.expectSSLRequest() }, starttls.ErrClosed, "closed"},
		{"stall-after-S", func(p *fakePeer) { p.expectSSLRequest(); p.send("S"); p.rest() }, starttls.ErrTimeout, "timeout"},
		// An error response announced as long that never ends: still a
		// refusal, and within one phase.
		{"error-stalls", func(p *fakePeer) { p.expectSSLRequest(); p.send("E\x00\x00\x01\x00SFATAL"); p.rest() }, starttls.ErrRefused, "truncated"},
		{"error-drips", func(p *fakePeer) {
			p.expectSSLRequest()
			p.send("EFATAL")
			for i := 0; i < 40; i++ {
				if _, err := p.conn.Write([]byte("x")); err != nil {
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		}, starttls.ErrRefused, "fatalx"},
		{"huge-v2-error", func(p *fakePeer) {
			p.expectSSLRequest()
			p.send("E" + strings.Repeat("y", 100<<10))
			p.rest()
		}, starttls.ErrRefused, "refused"},
		{"garbage-tls", func(p *fakePeer) {
			p.expectSSLRequest()
			p.send("S")
			p.br.ReadByte()
			p.send("\x16\x03\x01\x00\x05not TLS at all")
			p.rest()
		}, starttls.ErrHandshake, "handshake"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, tc.script)
			cfg := clientCfg(pki)
			cfg.PhaseTimeout = 300 * time.Millisecond
			start := time.Now()
			_, err := dialProto(t, starttls.Postgres, addr, cfg)
			wantErr(t, err, tc.class, tc.word)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}

// pgAccept plays a client against the real Accept.
func pgAccept(t *testing.T, cfg starttls.ServerConfig) (*fakePeer, <-chan accepted) {
	return acceptOne(t, starttls.Postgres, cfg)
}

// readPgError reads one ErrorResponse and returns its fields.
func (p *fakePeer) readPgError() map[byte]string {
	var hdr [5]byte
	if _, err := io.ReadFull(p.br, hdr[:]); err != nil || hdr[0] != 'E' {
		p.t.Errorf("no ErrorResponse: %q, %v", hdr, err)
		return nil
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
	if _, err := io.ReadFull(p.br, body); err != nil {
		p.t.Errorf("ErrorResponse body: %v", err)
		return nil
	}
	e, err := postgres.ParseError(body)
	if err != nil {
		p.t.Errorf("ErrorResponse: %v", err)
	}
	return e.Fields
}

func TestPostgresServer(t *testing.T) {
	pki := newPKI(t)
	clientTLS := &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "localhost"}

	t.Run("ssl-request", func(t *testing.T) {
		p, res := pgAccept(t, serverCfg(pki))
		p.send(string(pgSSLRequest))
		if b, _ := p.br.ReadByte(); b != 'S' {
			t.Fatalf("answer %q, want S", b)
		}
		tc := tls.Client(p.conn, clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		a := wait(t, res)
		if a.err != nil || !a.conn.Upgraded() {
			t.Fatalf("Accept: %v", a.err)
		}
		wantAppData(t, tc, a.conn, pgStartup("user", "bob"))
	})

	t.Run("gssenc-then-ssl", func(t *testing.T) {
		p, res := pgAccept(t, serverCfg(pki))
		p.send("\x00\x00\x00\x08\x04\xd2\x16\x30")
		if b, _ := p.br.ReadByte(); b != 'N' {
			t.Fatalf("GSSENCRequest answered %q, want N", b)
		}
		p.send(string(pgSSLRequest))
		if b, _ := p.br.ReadByte(); b != 'S' {
			t.Fatalf("SSLRequest answered %q, want S", b)
		}
		if err := tls.Client(p.conn, clientTLS).Handshake(); err != nil {
			t.Fatal(err)
		}
		if a := wait(t, res); a.err != nil {
			t.Fatal(a.err)
		}
	})

	// CVE-2021-23214: a StartupMessage pipelined with the SSLRequest.
	t.Run("injection-close", func(t *testing.T) {
		p, res := pgAccept(t, serverCfg(pki))
		p.send(string(pgSSLRequest) + string(pgStartup("user", "mallory")))
		wantSSLRequestInjectionClosed(t, p, res, "mallory")
	})
	t.Run("injection-discard", func(t *testing.T) {
		cfg := serverCfg(pki)
		cfg.Injection = starttls.Discard
		p, res := pgAccept(t, cfg)
		p.send(string(pgSSLRequest) + string(pgStartup("user", "mallory")))
		if b, _ := p.br.ReadByte(); b != 'S' {
			t.Fatalf("answer %q, want S", b)
		}
		tc := tls.Client(p.conn, clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		a := wait(t, res)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if len(a.conn.Events) != 1 || a.conn.Events[0].Kind != starttls.EventCommandInjection || len(a.events) != 1 {
			t.Errorf("Conn.Events %+v, OnEvent %+v", a.conn.Events, a.events)
		}
		wantAppData(t, tc, a.conn, pgStartup("user", "alice"))
	})

	t.Run("plaintext-startup-required", func(t *testing.T) {
		p, res := pgAccept(t, serverCfg(pki))
		p.send(string(pgStartup("user", "alice", "database", "db")))
		f := p.readPgError()
		if f['S'] != "FATAL" || f['V'] != "FATAL" || f['C'] != "28000" || !strings.Contains(f['M'], "SSL required") {
			t.Errorf("ErrorResponse %q", f)
		}
		if rest := p.rest(); rest != "" {
			t.Errorf("more after the ErrorResponse: %q", rest)
		}
		a := wait(t, res)
		wantErr(t, a.err, starttls.ErrRefused, "ssl required")
	})

	t.Run("plaintext-startup-optional", func(t *testing.T) {
		cfg := serverCfg(pki)
		cfg.Policy = starttls.Optional
		p, res := pgAccept(t, cfg)
		startup := pgStartup("user", "alice")
		p.send(string(startup) + "Q\x00\x00\x00\x0dselect 1\x00")
		a := wait(t, res)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.conn.Upgraded() || a.conn.ClientName != "alice" {
			t.Fatalf("upgraded=%v client=%q", a.conn.Upgraded(), a.conn.ClientName)
		}
		b := make([]byte, len(startup)+14)
		_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(a.conn, b); err != nil || !bytes.Equal(b[:len(startup)], startup) || string(b[len(startup):len(startup)+1]) != "Q" {
			t.Errorf("application read %q, %v", b, err)
		}
	})

	t.Run("cancel-required", func(t *testing.T) {
		p, res := pgAccept(t, serverCfg(pki))
		p.send("\x00\x00\x00\x10\x04\xd2\x16\x2e\x00\x00\x00\x01\x00\x00\x00\x02")
		if rest := p.rest(); rest != "" {
			t.Errorf("server answered a CancelRequest: %q", rest)
		}
		wantErr(t, wait(t, res).err, starttls.ErrRefused, "cancelrequest")
	})
}

func TestPostgresServerHostile(t *testing.T) {
	pki := newPKI(t)
	cases := []struct {
		name   string
		data   string
		class  error
		word   string
		answer string // SQLSTATE of the ErrorResponse, "" for none
	}{
		{"silent", "", starttls.ErrTimeout, "timeout", ""},
		{"partial-header", "\x00\x00", starttls.ErrTimeout, "timeout", ""},
		{"partial-packet", "\x00\x00\x00\x10\x00\x03", starttls.ErrTimeout, "timeout", ""},
		{"huge-length", "\x7f\xff\xff\xff\x00\x03\x00\x00", starttls.ErrProtocol, "length", "08P01"},
		{"short-length", "\x00\x00\x00\x04", starttls.ErrProtocol, "length", "08P01"},
		{"ssl-request-with-body", "\x00\x00\x00\x0c\x04\xd2\x16\x2fabcd", starttls.ErrProtocol, "negotiation request", "08P01"},
		{"protocol-2", "\x00\x00\x00\x09\x00\x02\x00\x00\x00", starttls.ErrProtocol, "unsupported frontend protocol", "08P01"},
		{"unterminated-params", "\x00\x00\x00\x0c\x00\x03\x00\x00user", starttls.ErrProtocol, "unterminated", "08P01"},
		{"gssenc-twice", "\x00\x00\x00\x08\x04\xd2\x16\x30\x00\x00\x00\x08\x04\xd2\x16\x30", starttls.ErrProtocol, "repeated", "08P01"},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", starttls.ErrProtocol, "length", "08P01"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverCfg(pki)
			cfg.PhaseTimeout = 300 * time.Millisecond
			p, res := pgAccept(t, cfg)
			start := time.Now()
			p.send(tc.data)
			a := wait(t, res)
			wantErr(t, a.err, tc.class, tc.word)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
			rest := p.rest()
			if tc.name == "gssenc-twice" {
				if !strings.HasPrefix(rest, "N") {
					t.Fatalf("first GSSENCRequest answered %q", rest)
				}
				rest = rest[1:]
			}
			if tc.answer == "" {
				if rest != "" {
					t.Errorf("server answered %q", rest)
				}
				return
			}
			if !strings.HasPrefix(rest, "E") || !strings.Contains(rest, "C"+tc.answer+"\x00") {
				t.Errorf("server answered %q, want an ErrorResponse %s", rest, tc.answer)
			}
		})
	}
}

// FuzzPostgresClient feeds arbitrary server bytes to the client after its
// SSLRequest: it must neither panic nor hang, must never report an
// upgrade, and must fail with a typed error; 'S' plus more in one segment
// must be an injection.
func FuzzPostgresClient(f *testing.F) {
	for _, s := range []string{"S", "N", "E", "SS", "S\x16\x03\x01", "NS", "X",
		string(pgErrorResponse("SFATAL", "C28000", "Mno")), "EFATAL: old\n\x00", "E\xff\xff\xff\xff",
		"E\x00\x00\x00\x05\x00", "E\x00\x00\x00\x04", "S" + string(pgErrorResponse("SFATAL")), ""} {
		f.Add([]byte(s))
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { l.Close() })
	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			var req [8]byte
			if _, err := io.ReadFull(c, req[:]); err != nil {
				return
			}
			_, _ = c.Write(data)
			c.(*net.TCPConn).CloseWrite()
			_, _ = io.Copy(io.Discard, c)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		start := time.Now()
		c, err := starttls.Dial(ctx, starttls.Postgres, l.Addr().String(),
			&starttls.Config{TLSConfig: &tls.Config{ServerName: "localhost"}, PhaseTimeout: 300 * time.Millisecond})
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("client took %v on %q", el, data)
		}
		if err == nil {
			c.Close()
			t.Fatalf("upgrade reported on %q", data)
		}
		if st := starttls.StatusOf(err); st == starttls.StatusError {
			t.Errorf("untyped error %v on %q", err, data)
		}
		if len(data) > 1 && data[0] == 'S' && !errors.Is(err, starttls.ErrInjection) {
			t.Errorf("'S' followed by %d bytes gave %v, want injection", len(data)-1, err)
		}
		<-done
	})
}
