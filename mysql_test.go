package starttls_test

// MySQL/MariaDB SSLRequest negotiation: client and server halves against
// scripted peers on loopback, injection, malformed and oversized packets,
// and a fuzz target for the initial handshake parser.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/mysql"
)

func myPacket(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// myHandshake builds an initial handshake like MariaDB 10.11's.
func myHandshake(caps uint32, version string) []byte {
	p := []byte{10}
	p = append(append(p, version...), 0)
	p = binary.LittleEndian.AppendUint32(p, 42)
	p = append(p, "abcdefgh"...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, 45)
	p = binary.LittleEndian.AppendUint16(p, 2)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, 21)
	p = append(p, 0, 0, 0, 0, 0, 0, 0x1d, 0, 0, 0) // MariaDB extended capabilities in the last 4
	p = append(p, "ijklmnopqrst"...)
	p = append(p, 0)
	p = append(p, "mysql_native_password"...)
	p = append(p, 0)
	return myPacket(0, p)
}

const myServerCaps = 0x807ff7fe | mysql.ClientSSL // MariaDB: no CLIENT_MYSQL

func myErr(seq byte, code uint16, state, msg string) []byte {
	p := []byte{0xff, byte(code), byte(code >> 8)}
	if state != "" {
		p = append(append(p, '#'), state...)
	}
	return myPacket(seq, append(p, msg...))
}

// readPacket reads one packet; nil on error.
func (p *fakePeer) readPacket() (byte, []byte) {
	var hdr [4]byte
	if _, err := io.ReadFull(p.br, hdr[:]); err != nil {
		p.t.Errorf("reading packet header: %v", err)
		return 0, nil
	}
	b := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
	if _, err := io.ReadFull(p.br, b); err != nil {
		p.t.Errorf("reading packet: %v", err)
		return 0, nil
	}
	return hdr[3], b
}

// expectMySQLSSLRequest reads the client's SSLRequest and checks its layout.
func (p *fakePeer) expectMySQLSSLRequest() bool {
	seq, b := p.readPacket()
	if b == nil {
		return false
	}
	caps := binary.LittleEndian.Uint32(b)
	want := mysql.ClientSSL | mysql.ClientProtocol41 | mysql.ClientSecureConnection
	switch {
	case seq != 1:
		p.t.Errorf("SSLRequest sequence id %d", seq)
	case len(b) != 32:
		p.t.Errorf("SSLRequest of %d bytes", len(b))
	case caps&want != want:
		p.t.Errorf("SSLRequest capabilities 0x%08x lack 0x%08x", caps, want)
	case b[8] != 33 && b[8] != 45:
		p.t.Errorf("SSLRequest charset %d", b[8])
	case !bytes.Equal(b[9:], make([]byte, 23)):
		p.t.Errorf("SSLRequest filler %x", b[9:])
	default:
		return true
	}
	return false
}

func myDial(t testing.TB, addr string, cfg *starttls.Config) (*starttls.Conn, error) {
	t.Helper()
	return dial(t, dialect{proto: starttls.MySQL}, addr, cfg)
}

func TestMySQLClientAgainstFakeServer(t *testing.T) {
	pki := newPKI(t)
	addr := fakeServer(t, func(p *fakePeer) {
		p.send(string(myHandshake(myServerCaps, "5.5.5-10.11.19-MariaDB-0+deb12u1")))
		if !p.expectMySQLSSLRequest() {
			return
		}
		// The ClientHello may already sit in p.br behind the SSLRequest.
		if p = p.tlsBuffered(pki.Server); p == nil {
			t.Error("handshake failed")
			return
		}
		p.rest()
	})
	c, err := myDial(t, addr, clientCfg(pki))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Upgraded() {
		t.Fatal("not upgraded")
	}
	if c.Greeting != "5.5.5-10.11.19-MariaDB-0+deb12u1" {
		t.Errorf("Greeting %q", c.Greeting)
	}
	if args, _ := c.CapabilitiesBefore.Args("AUTH-DATA"); len(args) != 1 || args[0] != hex.EncodeToString([]byte("abcdefghijklmnopqrst")) {
		t.Errorf("AUTH-DATA %q", args)
	}
	for _, want := range []string{"CLIENT_SSL", "AUTH-PLUGIN", "MARIADB-CAPABILITIES", "CONNECTION-ID"} {
		if !c.CapabilitiesBefore.Has(want) {
			t.Errorf("CapabilitiesBefore %q lacks %s", c.CapabilitiesBefore, want)
		}
	}
}

// Our client against our server, then the application's HandshakeResponse
// (sequence id 2) inside TLS.
func TestMySQLRoundTrip(t *testing.T) {
	pki := newPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	resp := myPacket(2, append(append(make([]byte, 32), "alice"...), 0, 0))
	type result struct {
		c   *starttls.Conn
		got []byte
		err error
	}
	out := make(chan result, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			out <- result{err: err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := starttls.Accept(ctx, conn, starttls.MySQL, &starttls.ServerConfig{TLSConfig: pki.Server})
		if err != nil {
			out <- result{err: err}
			return
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, len(resp))
		_, err = io.ReadFull(c, b)
		out <- result{c: c, got: b, err: err}
	}()
	c, err := myDial(t, l.Addr().String(), clientCfg(pki))
	if err != nil {
		t.Fatal(err)
	}
	if !c.Upgraded() || c.ConnectionState().Version < tls.VersionTLS12 {
		t.Fatal("not upgraded")
	}
	if _, err := c.Write(resp); err != nil {
		t.Fatal(err)
	}
	r := <-out
	if r.err != nil {
		t.Fatalf("server: %v", r.err)
	}
	defer r.c.Close()
	if !bytes.Equal(r.got, resp) {
		t.Errorf("server read %x", r.got)
	}
	// Both sides agree on the scramble the application needs for auth.
	ca, _ := c.CapabilitiesBefore.Args("AUTH-DATA")
	sa, _ := r.c.CapabilitiesBefore.Args("AUTH-DATA")
	if len(ca) != 1 || len(sa) != 1 || ca[0] != sa[0] || len(ca[0]) != 40 {
		t.Errorf("scramble client %q server %q", ca, sa)
	}
	if c.Greeting == "" || c.Greeting != r.c.Greeting {
		t.Errorf("greeting %q vs %q", c.Greeting, r.c.Greeting)
	}
	if err := c.Quit(context.Background()); err != nil {
		t.Errorf("Quit: %v", err)
	}
}

func TestMySQLClientRefusals(t *testing.T) {
	pki := newPKI(t)
	cases := []struct {
		name  string
		first []byte
		class error
		word  string
	}{
		{"no-ssl", myHandshake(myServerCaps&^mysql.ClientSSL, "5.7.0"), starttls.ErrNotOffered, "not offered"},
		{"err-41", myErr(0, 1040, "08004", "Too many connections"), starttls.ErrRefused, "too many connections"},
		{"err-plain", myErr(0, 1130, "", "Host '10.0.0.1' is not allowed to connect to this MariaDB server"), starttls.ErrRefused, "not allowed"},
		{"err-short", myPacket(0, []byte{0xff, 1}), starttls.ErrProtocol, "malformed err"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := make(chan string, 1)
			addr := fakeServer(t, func(p *fakePeer) {
				p.send(string(tc.first))
				after <- p.rest()
			})
			_, err := myDial(t, addr, clientCfg(pki))
			wantErr(t, err, tc.class, tc.word)
			if rest := <-after; rest != "" {
				t.Errorf("client sent %q", rest)
			}
		})
	}
	t.Run("no-ssl-opportunistic", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			p.send(string(myHandshake(myServerCaps&^mysql.ClientSSL, "5.7.0")))
			p.rest()
		})
		cfg := clientCfg(pki)
		cfg.Opportunistic = true
		c, err := myDial(t, addr, cfg)
		wantFallback(t, c, err, starttls.ErrNotOffered)
	})
}

// The server has nothing to say between its handshake and TLS: bytes that
// come with the handshake are injection, and the client sends no
// SSLRequest; bytes after the SSLRequest never become an upgrade.
func TestMySQLClientResponseInjection(t *testing.T) {
	pki := newPKI(t)
	for name, inj := range map[string][]byte{
		"ok-packet":  myPacket(2, []byte{0, 0, 0, 2, 0, 0, 0}),
		"err-packet": myErr(2, 1045, "28000", "Access denied"),
		"one-byte":   {0},
	} {
		t.Run(name, func(t *testing.T) {
			after := make(chan string, 1)
			addr := fakeServer(t, func(p *fakePeer) {
				p.send(string(myHandshake(myServerCaps, "8.0.36")) + string(inj))
				after <- p.rest()
			})
			cfg := clientCfg(pki)
			cfg.Opportunistic = true
			_, err := myDial(t, addr, cfg)
			wantErr(t, err, starttls.ErrInjection, "injection")
			if rest := <-after; rest != "" {
				t.Errorf("client sent %d bytes after an injected handshake", len(rest))
			}
		})
	}
	t.Run("after-sslrequest", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			p.send(string(myHandshake(myServerCaps, "8.0.36")))
			if p.expectMySQLSSLRequest() {
				p.send(string(myPacket(2, []byte{0, 0, 0, 2, 0, 0, 0})))
				p.rest()
			}
		})
		_, err := myDial(t, addr, clientCfg(pki))
		// Caught as injection if it arrived before the check, else it is
		// what the TLS handshake reads: never an upgrade.
		if !errors.Is(err, starttls.ErrInjection) && !errors.Is(err, starttls.ErrHandshake) {
			t.Fatalf("err %v, want injection or handshake", err)
		}
	})
}

func TestMySQLClientHostile(t *testing.T) {
	pki := newPKI(t)
	hs := myHandshake(myServerCaps, "8.0.36")
	cases := []struct {
		name  string
		data  []byte
		class error
		word  string
	}{
		{"silent", nil, starttls.ErrTimeout, "timeout"},
		{"partial-header", []byte{0x50, 0}, starttls.ErrTimeout, "timeout"},
		{"partial-packet", hs[:20], starttls.ErrTimeout, "timeout"},
		{"oversized", []byte{0xff, 0xff, 0xff, 0}, starttls.ErrTooMuchData, "limit"},
		{"wrong-seq", append([]byte{hs[0], hs[1], hs[2], 3}, hs[4:]...), starttls.ErrProtocol, "sequence id 3"},
		{"protocol-9", append(append([]byte{}, hs[:4]...), append([]byte{9}, hs[5:]...)...), starttls.ErrProtocol, "protocol version 9"},
		{"no-nul-version", myPacket(0, append([]byte{10}, strings.Repeat("8", 200)...)), starttls.ErrProtocol, "unterminated server version"},
		{"truncated", myPacket(0, []byte("\x0a8.0\x00\x01\x00\x00\x00abc")), starttls.ErrProtocol, "truncated"},
		{"http", []byte("HTTP/1.1 400 Bad Request\r\n\r\n"), starttls.ErrTooMuchData, "limit"},
		{"closes", []byte{}, starttls.ErrClosed, "closed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				if tc.data == nil {
					p.rest()
					return
				}
				p.send(string(tc.data))
				if tc.name != "closes" {
					p.rest()
				}
			})
			cfg := clientCfg(pki)
			cfg.PhaseTimeout = 300 * time.Millisecond
			start := time.Now()
			_, err := myDial(t, addr, cfg)
			wantErr(t, err, tc.class, tc.word)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}

// tlsBuffered is fakePeer.tls reading through p's buffer, for protocols
// where the client starts TLS without waiting for an answer.
func (p *fakePeer) tlsBuffered(cfg *tls.Config) *fakePeer {
	tc := tls.Server(&readerConn{Conn: p.conn, r: p.br}, cfg)
	if err := tc.Handshake(); err != nil {
		return nil
	}
	return newFakePeer(p.t, tc)
}

type readerConn struct {
	net.Conn
	r io.Reader
}

func (c *readerConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// firstWritePrefix sends pre in the same write as the first bytes written.
type firstWritePrefix struct {
	net.Conn
	pre []byte
}

func (c *firstWritePrefix) Write(b []byte) (int, error) {
	if c.pre != nil {
		pre := c.pre
		c.pre = nil
		if _, err := c.Conn.Write(append(pre, b...)); err != nil {
			return 0, err
		}
		return len(b), nil
	}
	return c.Conn.Write(b)
}

// mySSLRequest is a client's SSLRequest as libmariadb sends it.
func mySSLRequest() []byte {
	p := make([]byte, 32)
	binary.LittleEndian.PutUint32(p, 0x000aa28d|mysql.ClientSSL)
	binary.LittleEndian.PutUint32(p[4:], 1<<24)
	p[8] = 45
	return myPacket(1, p)
}

// readServerHandshake reads and parses our server's initial handshake.
func (p *fakePeer) readServerHandshake() mysql.Handshake {
	seq, b := p.readPacket()
	h, err := mysql.ParseHandshake(b)
	if err != nil || seq != 0 {
		p.t.Fatalf("server handshake seq %d: %v", seq, err)
	}
	return h
}

func TestMySQLServer(t *testing.T) {
	pki := newPKI(t)
	clientTLS := &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "localhost"}
	full := myPacket(1, append(append(binary.LittleEndian.AppendUint32(make([]byte, 0, 64), 0x000aa28d), make([]byte, 28)...), "alice\x00\x00"...))

	t.Run("handshake-and-ssl", func(t *testing.T) {
		p, res := acceptOne(t, starttls.MySQL, serverCfg(pki))
		h := p.readServerHandshake()
		if h.Capabilities&mysql.ClientSSL == 0 || h.AuthPlugin != "mysql_native_password" || len(h.AuthData) != 20 {
			t.Errorf("handshake %+v", h)
		}
		p.send(string(mySSLRequest()))
		tc := tls.Client(p.conn, clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		a := wait(t, res)
		if a.err != nil || !a.conn.Upgraded() {
			t.Fatalf("Accept: %v", a.err)
		}
		if args, _ := a.conn.CapabilitiesBefore.Args("AUTH-DATA"); len(args) != 1 || args[0] != hex.EncodeToString(h.AuthData) {
			t.Errorf("server AUTH-DATA %q, sent %x", args, h.AuthData)
		}
	})

	// Clients start TLS right behind the SSLRequest (there is no
	// go-ahead): a ClientHello in the same segment is the TLS session, not
	// an injection.
	t.Run("clienthello-in-same-segment", func(t *testing.T) {
		p, res := acceptOne(t, starttls.MySQL, serverCfg(pki))
		p.readServerHandshake()
		tc := tls.Client(&firstWritePrefix{Conn: p.conn, pre: mySSLRequest()}, clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		a := wait(t, res)
		if a.err != nil || !a.conn.Upgraded() || len(a.events) != 0 {
			t.Fatalf("Accept: %v, events %+v", a.err, a.events)
		}
		wantAppData(t, tc, a.conn, []byte("IN-TLS"))
	})

	t.Run("injection-close", func(t *testing.T) {
		p, res := acceptOne(t, starttls.MySQL, serverCfg(pki))
		p.readServerHandshake()
		p.send(string(mySSLRequest()) + string(myPacket(2, []byte("\x03select 1"))))
		wantSSLRequestInjectionClosed(t, p, res, "select 1")
	})
	t.Run("injection-discard", func(t *testing.T) {
		cfg := serverCfg(pki)
		cfg.Injection = starttls.Discard
		p, res := acceptOne(t, starttls.MySQL, cfg)
		p.readServerHandshake()
		p.send(string(mySSLRequest()) + string(myPacket(2, []byte("\x03select 1"))))
		// Discard drops everything buffered with the injection; let the
		// server read it before the ClientHello comes.
		time.Sleep(100 * time.Millisecond)
		tc := tls.Client(p.conn, clientTLS)
		if err := tc.Handshake(); err != nil {
			t.Fatal(err)
		}
		a := wait(t, res)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if len(a.conn.Events) != 1 || len(a.events) != 1 {
			t.Errorf("Conn.Events %+v, OnEvent %+v", a.conn.Events, a.events)
		}
		wantAppData(t, tc, a.conn, []byte("IN-TLS"))
	})

	t.Run("plaintext-required", func(t *testing.T) {
		p, res := acceptOne(t, starttls.MySQL, serverCfg(pki))
		p.readServerHandshake()
		p.send(string(full))
		seq, b := p.readPacket()
		e, err := mysql.ParseError(b)
		if err != nil || seq != 2 || e.Code != 3159 || e.SQLState != "HY000" || !strings.Contains(e.Message, "insecure transport") {
			t.Errorf("answer seq %d %+v %v", seq, e, err)
		}
		if rest := p.rest(); rest != "" {
			t.Errorf("more after ERR: %q", rest)
		}
		wantErr(t, wait(t, res).err, starttls.ErrRefused, "ssl required")
	})
	t.Run("plaintext-optional", func(t *testing.T) {
		cfg := serverCfg(pki)
		cfg.Policy = starttls.Optional
		p, res := acceptOne(t, starttls.MySQL, cfg)
		p.readServerHandshake()
		p.send(string(full))
		a := wait(t, res)
		if a.err != nil {
			t.Fatal(a.err)
		}
		if a.conn.Upgraded() || a.conn.ClientName != "alice" {
			t.Fatalf("upgraded=%v client=%q", a.conn.Upgraded(), a.conn.ClientName)
		}
		b := make([]byte, len(full))
		_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(a.conn, b); err != nil || !bytes.Equal(b, full) {
			t.Errorf("application read %x, %v", b, err)
		}
	})
	t.Run("ssl-flag-on-full-response", func(t *testing.T) {
		p, res := acceptOne(t, starttls.MySQL, serverCfg(pki))
		p.readServerHandshake()
		withSSL := append([]byte{}, full...)
		withSSL[5] |= byte(mysql.ClientSSL >> 8)
		p.send(string(withSSL))
		_, b := p.readPacket()
		if e, err := mysql.ParseError(b); err != nil || e.Code != 1043 {
			t.Errorf("answer %+v %v", e, err)
		}
		wantErr(t, wait(t, res).err, starttls.ErrProtocol, "ssl")
	})
}

func TestMySQLServerHostile(t *testing.T) {
	pki := newPKI(t)
	cases := []struct {
		name  string
		data  []byte
		class error
		word  string
	}{
		{"silent", nil, starttls.ErrTimeout, "timeout"},
		{"partial", mySSLRequest()[:10], starttls.ErrTimeout, "timeout"},
		{"oversized", []byte{0xff, 0xff, 0xff, 1}, starttls.ErrTooMuchData, "limit"},
		{"wrong-seq", append([]byte{32, 0, 0, 0}, mySSLRequest()[4:]...), starttls.ErrProtocol, "sequence id 0"},
		{"short", myPacket(1, []byte{0x8d, 0xaa, 0, 0}), starttls.ErrProtocol, "4 bytes"},
		{"protocol-320", myPacket(1, make([]byte, 32)), starttls.ErrProtocol, "protocol_41"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverCfg(pki)
			cfg.PhaseTimeout = 300 * time.Millisecond
			p, res := acceptOne(t, starttls.MySQL, cfg)
			p.readServerHandshake()
			start := time.Now()
			p.send(string(tc.data))
			a := wait(t, res)
			wantErr(t, a.err, tc.class, tc.word)
			if el := time.Since(start); el > 2*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}
}

// FuzzMySQLHandshake checks the initial handshake parser: no panic, and
// what it accepts is consistent with the bytes.
func FuzzMySQLHandshake(f *testing.F) {
	for _, s := range [][]byte{
		myHandshake(myServerCaps, "5.5.5-10.11.19-MariaDB-0+deb12u1")[4:],
		myHandshake(0xffffffff, "8.0.36")[4:],
		myHandshake(mysql.ClientProtocol41, "4.1")[4:],
		[]byte("\x0a5.0\x00\x01\x00\x00\x00abcdefgh\x00\xff\xf7"),
		{10}, {0xff, 0x10, 0x04}, {}, []byte("\x0a\x00"),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := mysql.ParseHandshake(p)
		if err != nil {
			if !errors.Is(err, starttls.ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if h.ProtocolVersion != 10 || len(p) == 0 || p[0] != 10 {
			t.Fatalf("accepted protocol %d", h.ProtocolVersion)
		}
		if strings.IndexByte(h.ServerVersion, 0) >= 0 || !bytes.HasPrefix(p[1:], append([]byte(h.ServerVersion), 0)) {
			t.Fatalf("server version %q not the packet's C string", h.ServerVersion)
		}
		if len(h.AuthData) < 8 || len(h.AuthData) > len(p) || !bytes.Contains(p, h.AuthData[:8]) {
			t.Fatalf("auth data %x out of the packet", h.AuthData)
		}
		if len(h.AuthPlugin) > len(p) || strings.IndexByte(h.AuthPlugin, 0) >= 0 {
			t.Fatalf("plugin %q", h.AuthPlugin)
		}
		if h.ConnectionID != binary.LittleEndian.Uint32(p[len(h.ServerVersion)+2:]) {
			t.Fatalf("connection id %d", h.ConnectionID)
		}
	})
}
