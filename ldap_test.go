package starttls_test

// LDAP (RFC 4511 StartTLS extended operation): round trips, the client and
// server security invariants against scripted peers speaking raw BER, the
// decoder's rules, and fuzz targets for the decoder and the client.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/proto/ldap"
)

const ldapOID = "1.3.6.1.4.1.1466.20037"

// ber encodes one TLV with a minimal definite length.
func ber(tag byte, parts ...[]byte) []byte {
	body := bytes.Join(parts, nil)
	n := len(body)
	out := []byte{tag}
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n < 0x100:
		out = append(out, 0x81, byte(n))
	case n < 0x10000:
		out = append(out, 0x82, byte(n>>8), byte(n))
	default:
		out = append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, body...)
}

func berInt(v int) []byte {
	if v < 0x80 {
		return ber(0x02, []byte{byte(v)})
	}
	return ber(0x02, []byte{0, byte(v >> 8), byte(v)}) // enough for test IDs
}

func ldapMsg(id int, op ...[]byte) []byte { return ber(0x30, append([][]byte{berInt(id)}, op...)...) }

// ldapResult is an op with LDAPResult components (and extra trailing fields).
func ldapResult(app byte, code int, diag string, extra ...[]byte) []byte {
	parts := append([][]byte{ber(0x0a, []byte{byte(code)}), ber(0x04), ber(0x04, []byte(diag))}, extra...)
	return ber(0x60|app, parts...)
}

func ldapExtResp(id, code int, diag, name string) []byte {
	var extra [][]byte
	if name != "" {
		extra = append(extra, ber(0x8a, []byte(name)))
	}
	return ldapMsg(id, ldapResult(24, code, diag, extra...))
}

func ldapStartTLSReq(id int) []byte { return ldapMsg(id, ber(0x77, ber(0x80, []byte(ldapOID)))) }

// ldapBindReq is a simple bind (version 3, name, password).
func ldapBindReq(id int, dn, pw string) []byte {
	return ldapMsg(id, ber(0x60, ber(0x02, []byte{3}), ber(0x04, []byte(dn)), ber(0x80, []byte(pw))))
}

// ldapSearchReq is a base-scope search of the RootDSE for (objectClass=*).
func ldapSearchReq(id int) []byte {
	return ldapMsg(id, ber(0x63, ber(0x04), ber(0x0a, []byte{0}), ber(0x0a, []byte{0}), ber(0x02, []byte{0}),
		ber(0x02, []byte{0}), ber(0x01, []byte{0}), ber(0x87, []byte("objectClass")), ber(0x30)))
}

// readBER reads one whole TLV from r (test side; trusts the length).
func readBER(r io.Reader) ([]byte, error) {
	h := make([]byte, 2)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, err
	}
	n := int(h[1])
	if n >= 0x80 {
		k := n & 0x7f
		lb := make([]byte, k)
		if _, err := io.ReadFull(r, lb); err != nil {
			return nil, err
		}
		h = append(h, lb...)
		n = 0
		for _, c := range lb {
			n = n<<8 | int(c)
		}
	}
	body := make([]byte, n)
	_, err := io.ReadFull(r, body)
	return append(h, body...), err
}

// msg reads one LDAPMessage from the peer and decodes it.
func (p *fakePeer) msg() *ldap.Message {
	p.t.Helper()
	raw, err := readBER(p.br)
	if err != nil {
		p.t.Errorf("reading an LDAPMessage: %v", err)
		return &ldap.Message{Op: -1}
	}
	m, err := ldap.ParseMessage(raw)
	if err != nil {
		p.t.Errorf("decoding %x: %v", raw, err)
		return &ldap.Message{Op: -1}
	}
	return m
}

// expectStartTLS reads the client's request and checks it byte for byte.
func (p *fakePeer) expectStartTLS() {
	p.t.Helper()
	raw, err := readBER(p.br)
	if err != nil {
		p.t.Errorf("reading the StartTLS request: %v", err)
		return
	}
	if want := ldapStartTLSReq(1); !bytes.Equal(raw, want) {
		p.t.Errorf("StartTLS request %x, want %x", raw, want)
	}
}

func TestLDAPRegistered(t *testing.T) {
	for _, tc := range []struct {
		p        starttls.Protocol
		port     int
		implicit bool
	}{{starttls.LDAP, 389, false}, {starttls.LDAPS, 636, true}} {
		info, err := starttls.Lookup(tc.p)
		if err != nil {
			t.Fatal(err)
		}
		if info.DefaultPort != tc.port || info.Implicit != tc.implicit || info.Base != starttls.LDAP || !info.Server {
			t.Errorf("%s: %+v", tc.p, info)
		}
	}
}

// Our client against our server, plaintext StartTLS and implicit ldaps;
// inside TLS the server reads the client's UnbindRequest from Quit.
func TestLDAPRoundTrip(t *testing.T) {
	pki := newPKI(t)
	for _, p := range []starttls.Protocol{starttls.LDAP, starttls.LDAPS} {
		t.Run(string(p), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			type result struct {
				conn   *starttls.Conn
				unbind *ldap.Message
				err    error
			}
			done := make(chan result, 1)
			go func() {
				conn, err := l.Accept()
				if err != nil {
					done <- result{err: err}
					return
				}
				c, err := starttls.Accept(ctx, conn, p, &starttls.ServerConfig{TLSConfig: pki.Server})
				if err != nil {
					done <- result{err: err}
					return
				}
				defer c.Close()
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				raw, err := readBER(c)
				if err != nil {
					done <- result{conn: c, err: fmt.Errorf("reading inside TLS: %w", err)}
					return
				}
				m, err := ldap.ParseMessage(raw)
				done <- result{conn: c, unbind: m, err: err}
			}()
			c, err := dialProto(t, p, l.Addr().String(), &starttls.Config{TLSConfig: pki.Client})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if !c.Upgraded() || c.ConnectionState().Version < tls.VersionTLS12 || len(c.ConnectionState().VerifiedChains) == 0 {
				t.Fatalf("not upgraded and verified: %+v", c.ConnectionState())
			}
			if p == starttls.LDAP {
				var tr []string
				for _, e := range c.Transcript {
					tr = append(tr, e.Text)
				}
				all := strings.Join(tr, "\n")
				if len(c.Transcript) != 2 || !strings.Contains(all, "ExtendedRequest messageID=1") ||
					!strings.Contains(all, "ExtendedResponse messageID=1 name="+ldapOID+" resultCode=0 (success)") {
					t.Errorf("transcript:\n%s", all)
				}
			}
			if err := c.Quit(ctx); err != nil {
				t.Fatalf("quit: %v", err)
			}
			r := <-done
			if r.err != nil {
				t.Fatalf("server: %v", r.err)
			}
			if r.conn.Upgraded() != true || r.unbind.Op != 2 {
				t.Errorf("server saw %v upgraded=%v", r.unbind, r.conn.Upgraded())
			}
		})
	}
}

// A refusal is ErrRefused naming the result code and carrying the
// server's diagnostic message; opportunistic clients fall back.
func TestLDAPClientRefused(t *testing.T) {
	pki := newPKI(t)
	for _, tc := range []struct {
		code int
		name string
	}{{2, "protocolerror"}, {52, "unavailable"}, {1, "operationserror"}, {53, "unwillingtoperform"}, {13, "confidentialityrequired"}, {99, "resultcode 99"}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				p.expectStartTLS()
				p.send(string(ldapExtResp(1, tc.code, "no TLS for you", "")))
				p.rest()
			})
			_, err := dialProto(t, starttls.LDAP, addr, clientCfg(pki))
			wantErr(t, err, starttls.ErrRefused, tc.name)
			if !strings.Contains(err.Error(), "no TLS for you") {
				t.Errorf("error %q lacks the diagnostic message", err)
			}
			if starttls.StatusOf(err) != starttls.StatusRefused {
				t.Errorf("status %s", starttls.StatusOf(err))
			}
		})
	}
	t.Run("opportunistic", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			p.expectStartTLS()
			p.send(string(ldapExtResp(1, 2, "", "")))
			p.rest()
		})
		cfg := clientCfg(pki)
		cfg.Opportunistic = true
		c, err := dialProto(t, starttls.LDAP, addr, cfg)
		wantFallback(t, c, err, starttls.ErrRefused)
	})
}

// A Notice of Disconnection ends the session: ErrClosed with its message.
func TestLDAPClientNoticeOfDisconnection(t *testing.T) {
	pki := newPKI(t)
	addr := fakeServer(t, func(p *fakePeer) {
		p.expectStartTLS()
		p.send(string(ldapExtResp(0, 52, "server shutting down", "1.3.6.1.4.1.1466.20036")))
	})
	cfg := clientCfg(pki)
	cfg.Opportunistic = true // no plaintext fallback on a closed session either
	_, err := dialProto(t, starttls.LDAP, addr, cfg)
	wantErr(t, err, starttls.ErrClosed, "notice of disconnection")
	if !strings.Contains(err.Error(), "server shutting down") || !strings.Contains(err.Error(), "unavailable") {
		t.Errorf("error %q lacks the notice's code or message", err)
	}
}

// Invariant 1 (client): bytes after the go-ahead in the same write are a
// response injection, even when they are a valid LDAP message.
func TestLDAPClientResponseInjection(t *testing.T) {
	pki := newPKI(t)
	for _, name := range []string{"ldap-message", "garbage"} {
		t.Run(name, func(t *testing.T) {
			extra := ldapMsg(2, ldapResult(1, 0, "injected bind success"))
			if name == "garbage" {
				extra = []byte("x")
			}
			addr := fakeServer(t, func(p *fakePeer) {
				p.expectStartTLS()
				p.send(string(append(ldapExtResp(1, 0, "", ldapOID), extra...)))
				p.rest()
			})
			cfg := clientCfg(pki)
			cfg.Opportunistic = true
			_, err := dialProto(t, starttls.LDAP, addr, cfg)
			wantErr(t, err, starttls.ErrInjection, "injection")
		})
	}
}

// Invariant 5 (client): malformed BER, wrong answers, oversize lengths and
// stalls are typed errors, each within the phase deadline.
func TestLDAPClientHostileServers(t *testing.T) {
	pki := newPKI(t)
	ok := ldapExtResp(1, 0, "", ldapOID)
	cases := []struct {
		name  string
		send  []byte
		hold  bool // keep the connection open after sending
		class error
		word  string
	}{
		{"not-a-sequence", []byte("220 smtp.example ESMTP\r\n"), true, starttls.ErrProtocol, "not an ldapmessage"},
		{"indefinite-length", []byte{0x30, 0x80, 0x02, 0x01, 0x01}, true, starttls.ErrProtocol, "indefinite"},
		{"huge-length", []byte{0x30, 0x84, 0x7f, 0xff, 0xff, 0xff}, true, starttls.ErrTooMuchData, "limit"},
		{"over-limit", []byte{0x30, 0x83, 0x01, 0x00, 0x00}, true, starttls.ErrTooMuchData, "limit"},
		{"five-length-octets", []byte{0x30, 0x85, 0, 0, 0, 0, 0x10}, true, starttls.ErrProtocol, "length of 5 octets"},
		{"reserved-length", []byte{0x30, 0xff}, true, starttls.ErrProtocol, "reserved"},
		{"truncated-then-closed", ok[:len(ok)-3], false, starttls.ErrClosed, "closed"},
		{"stall-in-header", []byte{0x30}, true, starttls.ErrTimeout, "timeout"},
		{"stall-in-body", ok[:5], true, starttls.ErrTimeout, "timeout"},
		{"silent", nil, true, starttls.ErrTimeout, "timeout"},
		{"closed", nil, false, starttls.ErrClosed, "closed"},
		{"wrong-message-id", ldapExtResp(7, 0, "", ldapOID), true, starttls.ErrProtocol, "messageid 7"},
		{"wrong-op", ldapMsg(1, ldapResult(1, 0, "")), true, starttls.ErrProtocol, "bindresponse"},
		{"wrong-response-name", ldapExtResp(1, 0, "", "1.2.3.4"), true, starttls.ErrProtocol, "responsename"},
		{"response-value", ldapMsg(1, ldapResult(24, 0, "", ber(0x8a, []byte(ldapOID)), ber(0x8b, []byte("v")))), true, starttls.ErrProtocol, "responsevalue"},
		{"unsolicited-other", ldapExtResp(0, 0, "", "1.2.3"), true, starttls.ErrProtocol, "messageid 0"},
		{"trailing-inside", ber(0x30, berInt(1), ldapResult(24, 0, ""), ber(0x04, []byte("junk"))), true, starttls.ErrProtocol, "controls"},
		{"negative-code", ldapMsg(1, ber(0x78, ber(0x0a, []byte{0xff}), ber(0x04), ber(0x04))), true, starttls.ErrProtocol, "negative"},
		{"constructed-string", ldapMsg(1, ber(0x78, ber(0x0a, []byte{0}), ber(0x24, ber(0x04)), ber(0x04))), true, starttls.ErrProtocol, "octet string"},
		{"high-tag", ldapMsg(1, []byte{0x7f, 0x81, 0x00, 0x00}), true, starttls.ErrProtocol, "high tag"},
		{"element-overrun", []byte{0x30, 0x05, 0x02, 0x09, 1, 1, 1}, true, starttls.ErrProtocol, "overruns"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				p.expectStartTLS()
				p.send(string(tc.send))
				if tc.hold {
					p.rest()
				}
			})
			// Timeouts must come from a short deadline; every other
			// condition must be seen at once, well before a long one.
			cfg := clientCfg(pki)
			cfg.PhaseTimeout = 300 * time.Millisecond
			limit := 2 * time.Second
			if tc.class != starttls.ErrTimeout {
				cfg.PhaseTimeout = 5 * time.Second
			}
			start := time.Now()
			_, err := dialProto(t, starttls.LDAP, addr, cfg)
			if d := time.Since(start); d > limit {
				t.Errorf("took %v", d)
			}
			wantErr(t, err, tc.class, tc.word)
		})
	}
}

// The decoder accepts BER's liberties that real servers use (long-form and
// non-minimal lengths, controls, referrals) and decodes the fields.
func TestParseLDAPMessage(t *testing.T) {
	// Active Directory style: four length octets everywhere.
	ad := []byte{0x30, 0x84, 0, 0, 0, 0x28, 0x02, 0x01, 0x01, 0x78, 0x84, 0, 0, 0, 0x1f,
		0x0a, 0x01, 0x00, 0x04, 0x00, 0x04, 0x00, 0x8a, 0x16}
	ad = append(ad, ldapOID...)
	m, err := ldap.ParseMessage(ad)
	if err != nil {
		t.Fatalf("AD-style encoding: %v", err)
	}
	if m.ID != 1 || m.Op != 24 || !m.HasResult || m.ResultCode != 0 || m.Name != ldapOID {
		t.Errorf("AD-style: %+v", m)
	}
	withCtl := ber(0x30, berInt(300), ldapResult(24, 52, "busy", ber(0xa3, ber(0x04, []byte("ldap://x/")))), ber(0xa0, ber(0x30)))
	m, err = ldap.ParseMessage(withCtl)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != 300 || m.ResultCode != 52 || m.Diagnostic != "busy" || !m.Controls {
		t.Errorf("with referral and controls: %+v", m)
	}
	if s := m.String(); !strings.Contains(s, "unavailable") || !strings.Contains(s, "messageID=300") {
		t.Errorf("String() = %q", s)
	}
	m, err = ldap.ParseMessage(ldapStartTLSReq(5))
	if err != nil || m.Op != 23 || m.Name != ldapOID || m.HasValue {
		t.Errorf("StartTLS request: %+v, %v", m, err)
	}
	for name, b := range map[string][]byte{
		"empty":         nil,
		"trailing":      append(ldapStartTLSReq(1), 0),
		"unbind-form":   ldapMsg(1, ber(0x62)), // UnbindRequest must be primitive
		"unknown-op":    ldapMsg(1, ber(0x71)),
		"universal-op":  ldapMsg(1, ber(0x04)),
		"id-too-big":    ber(0x30, ber(0x02, []byte{0, 0x80, 0, 0, 0}), ber(0x42)),
		"id-negative":   ber(0x30, ber(0x02, []byte{0x80}), ber(0x42)),
		"id-empty":      ber(0x30, ber(0x02), ber(0x42)),
		"id-not-int":    ber(0x30, ber(0x04, []byte{1}), ber(0x42)),
		"no-op":         ber(0x30, berInt(1)),
		"req-no-name":   ldapMsg(1, ber(0x77)),
		"req-bad-value": ldapMsg(1, ber(0x77, ber(0x80, []byte(ldapOID)), ber(0x04))),
	} {
		if m, err := ldap.ParseMessage(b); err == nil || !errors.Is(err, starttls.ErrProtocol) {
			t.Errorf("%s: %+v, %v; want ErrProtocol", name, m, err)
		}
	}
	if ldap.ResultCodeName(13) != "confidentialityRequired" || ldap.ResultCodeName(1000) != "resultCode 1000" {
		t.Error("LDAPResultCodeName")
	}
}

// Invariant 2, Close policy: StartTLS plus another LDAP message in one
// write gets no answer at all, an injection error and one event.
func TestLDAPServerCommandInjectionClose(t *testing.T) {
	pki := newPKI(t)
	p, res := acceptOne(t, starttls.LDAP, serverCfg(pki))
	search := ldapSearchReq(2)
	p.send(string(append(ldapStartTLSReq(1), search...)))
	if rest := p.rest(); rest != "" {
		t.Errorf("server answered %x to a pipelined StartTLS", rest)
	}
	a := wait(t, res)
	wantErr(t, a.err, starttls.ErrInjection, "injection")
	if len(a.events) != 1 || a.events[0].Kind != starttls.EventCommandInjection || !bytes.Equal(a.events[0].Data, search) {
		t.Errorf("events %+v, want one command-injection with the search request", a.events)
	}
}

// The audit client's pipelining probe (Config.PipelineAfterUpgrade) goes
// out in the same write as the StartTLS request, and our server half
// catches it as command injection without answering.
func TestLDAPPipelineProbeAgainstOurServer(t *testing.T) {
	pki := newPKI(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var events []starttls.Event
	done := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		cfg := serverCfg(pki)
		cfg.OnEvent = func(_ net.Addr, e starttls.Event) { events = append(events, e) }
		_, err = starttls.Accept(context.Background(), conn, starttls.LDAP, &cfg)
		done <- err
	}()
	probe := ldapMsg(2, ber(0x77, ber(0x80, []byte("1.3.6.1.4.1.4203.1.11.3"))))
	cfg := clientCfg(pki)
	cfg.PipelineAfterUpgrade = probe
	_, err = dialProto(t, starttls.LDAP, l.Addr().String(), cfg)
	wantErr(t, err, starttls.ErrClosed, "closed")
	wantErr(t, <-done, starttls.ErrInjection, "injection")
	if len(events) != 1 || !bytes.Equal(events[0].Data, probe) {
		t.Errorf("events %+v, want the probe", events)
	}
}

// Invariant 2, Discard policy: the go-ahead comes, the pipelined message
// is never answered, and the application's first read is from inside TLS.
func TestLDAPServerCommandInjectionDiscard(t *testing.T) {
	pki := newPKI(t)
	cfg := serverCfg(pki)
	cfg.Injection = starttls.Discard
	p, res := acceptOne(t, starttls.LDAP, cfg)
	p.send(string(append(ldapStartTLSReq(1), ldapBindReq(2, "cn=admin", "secret")...)))
	m := p.msg()
	if m.Op != 24 || m.ID != 1 || m.ResultCode != 0 || m.Name != ldapOID {
		t.Fatalf("go-ahead %v", m)
	}
	if n := p.br.Buffered(); n != 0 {
		t.Fatalf("%d bytes after the go-ahead", n)
	}
	tc, a := upgradeAccepted(t, p, pki, res)
	if len(a.conn.Events) != 1 || a.conn.Events[0].Kind != starttls.EventCommandInjection || len(a.events) != 1 {
		t.Errorf("Conn.Events %+v, OnEvent %+v; want the injection once", a.conn.Events, a.events)
	}
	inTLS := ldapSearchReq(3)
	if _, err := tc.Write(inTLS); err != nil {
		t.Fatal(err)
	}
	_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	got, err := readBER(a.conn)
	if err != nil || !bytes.Equal(got, inTLS) {
		t.Errorf("application read %x, %v; want the search sent inside TLS", got, err)
	}
}

// Invariant 4: under Required, a bind, a search and other extended
// operations before TLS are answered confidentialityRequired with their
// own response type and messageID; the session then upgrades.
func TestLDAPServerRequired(t *testing.T) {
	pki := newPKI(t)
	p, res := acceptOne(t, starttls.LDAP, serverCfg(pki))
	for _, tc := range []struct {
		req []byte
		op  int
	}{
		{ldapBindReq(1, "cn=admin,dc=test", "secret"), 1},
		{ldapSearchReq(2), 5},
		{ldapMsg(3, ber(0x77, ber(0x80, []byte("1.3.6.1.4.1.4203.1.11.3")))), 24}, // WhoAmI
		{ldapMsg(4, ber(0x4a, []byte("cn=x,dc=test"))), 11},                       // Delete
	} {
		p.send(string(tc.req))
		m := p.msg()
		req, _ := ldap.ParseMessage(tc.req)
		if m.Op != tc.op || m.ID != req.ID || m.ResultCode != 13 || !strings.Contains(m.Diagnostic, "StartTLS required") {
			t.Errorf("%s answered %v; want op %d confidentialityRequired", req.OpName(), m, tc.op)
		}
	}
	p.send(string(ldapMsg(5, ber(0x50, []byte{1})))) // Abandon: no answer
	p.send(string(ldapStartTLSReq(6)))
	if m := p.msg(); m.Op != 24 || m.ID != 6 || m.ResultCode != 0 || m.Name != ldapOID {
		t.Fatalf("go-ahead %v", m)
	}
	tc := tls.Client(p.conn, &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	a := wait(t, res)
	if a.err != nil || !a.conn.Upgraded() {
		t.Fatalf("upgrade: %v", a.err)
	}
}

// Under Optional, the first operation that is not StartTLS hands the
// plaintext session to the application with that message unread.
func TestLDAPServerOptionalHandoff(t *testing.T) {
	pki := newPKI(t)
	cfg := serverCfg(pki)
	cfg.Policy = starttls.Optional
	p, res := acceptOne(t, starttls.LDAP, cfg)
	bind := ldapBindReq(1, "cn=admin,dc=test", "secret")
	search := ldapSearchReq(2)
	p.send(string(bind[:4]))
	time.Sleep(20 * time.Millisecond)
	p.send(string(append(bind[4:], search...)))
	a := wait(t, res)
	if a.err != nil {
		t.Fatal(a.err)
	}
	if a.conn.Upgraded() {
		t.Fatal("handed-off session claims TLS")
	}
	_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range [][]byte{bind, search} {
		got, err := readBER(a.conn)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("application read %x, %v; want %x", got, err, want)
		}
	}
}

// Protocol rules of the server half, each a typed error or a documented answer.
func TestLDAPServerDialogueRules(t *testing.T) {
	pki := newPKI(t)
	t.Run("starttls-with-value", func(t *testing.T) {
		p, res := acceptOne(t, starttls.LDAP, serverCfg(pki))
		p.send(string(ldapMsg(1, ber(0x77, ber(0x80, []byte(ldapOID)), ber(0x81, []byte("x"))))))
		if m := p.msg(); m.Op != 24 || m.ResultCode != 2 {
			t.Errorf("answered %v, want protocolError", m)
		}
		p.conn.Close()
		wait(t, res)
	})
	t.Run("unbind", func(t *testing.T) {
		p, res := acceptOne(t, starttls.LDAP, serverCfg(pki))
		p.send(string(ldapMsg(1, ber(0x42))))
		if rest := p.rest(); rest != "" {
			t.Errorf("unbind answered %x", rest)
		}
		wantErr(t, wait(t, res).err, starttls.ErrClosed, "closed")
	})
	for name, b := range map[string][]byte{
		"garbage":         []byte("STARTTLS\r\n"),
		"response-op":     ldapMsg(1, ldapResult(1, 0, "")),
		"message-id-zero": ldapStartTLSReq(0),
		"indefinite":      {0x30, 0x80, 0, 0},
	} {
		t.Run(name, func(t *testing.T) {
			p, res := acceptOne(t, starttls.LDAP, serverCfg(pki))
			p.send(string(b))
			if m := p.msg(); m.ID != 0 || m.Name != "1.3.6.1.4.1.1466.20036" || m.ResultCode != 2 {
				t.Errorf("answered %v, want a notice of disconnection (protocolError)", m)
			}
			wantErr(t, wait(t, res).err, starttls.ErrProtocol, "protocol")
		})
	}
}

// Invariant 5 (server): limits and deadlines, typed errors in time.
func TestLDAPServerHostileClients(t *testing.T) {
	pki := newPKI(t)
	cases := []hostileClient{
		{"silent", nil, func(p *fakePeer) { p.rest() }, starttls.ErrTimeout},
		{"stall-in-body", nil, func(p *fakePeer) { p.send(string(ldapStartTLSReq(1)[:10])); p.rest() }, starttls.ErrTimeout},
		{"huge-length", nil, func(p *fakePeer) { p.send("\x30\x84\x7f\xff\xff\xff"); p.rest() }, starttls.ErrTooMuchData},
		{"over-line-limit", func(c *starttls.ServerConfig) { c.MaxLineLength = 100 }, func(p *fakePeer) {
			p.send(string(ldapBindReq(1, strings.Repeat("a", 200), "x")))
			p.rest()
		}, starttls.ErrTooMuchData},
		{"byte-budget", func(c *starttls.ServerConfig) { c.MaxPreTLSBytes = 1000; c.MaxCommands = 1000 }, func(p *fakePeer) {
			var b []byte
			for i := 1; i < 100; i++ {
				b = append(b, ldapSearchReq(i)...)
			}
			p.send(string(b))
			p.rest()
		}, starttls.ErrTooMuchData},
		{"too-many-messages", func(c *starttls.ServerConfig) { c.MaxCommands = 5 }, func(p *fakePeer) {
			var b []byte
			for i := 1; i < 10; i++ {
				b = append(b, ldapSearchReq(i)...)
			}
			p.send(string(b))
			p.rest()
		}, starttls.ErrProtocol},
		{"garbage-tls", nil, func(p *fakePeer) {
			p.send(string(ldapStartTLSReq(1)))
			p.msg()
			p.send("\x16\x03\x01\x00\x10this is no ClientHello")
			p.rest()
		}, starttls.ErrHandshake},
	}
	runHostileClients(t, pki, starttls.LDAP, cases, 2*time.Second)
}

// The implicit variant refuses a plaintext client.
func TestLDAPSServerRejectsPlaintext(t *testing.T) {
	pki := newPKI(t)
	cfg := serverCfg(pki)
	cfg.PhaseTimeout = 500 * time.Millisecond
	p, res := acceptOne(t, starttls.LDAPS, cfg)
	p.send(string(ldapStartTLSReq(1)))
	a := wait(t, res)
	if a.err == nil || !errors.Is(a.err, starttls.ErrHandshake) {
		t.Errorf("error %v, want a handshake error", a.err)
	}
}

// ldapFuzzCA is a CA no fuzzed input can hold a certificate of; made once.
var ldapFuzzCA = sync.OnceValue(func() *certs.CA {
	ca, err := certs.NewCA("ldap fuzz CA")
	if err != nil {
		panic(err)
	}
	return ca
})

var ldapFuzzLeaf = sync.OnceValue(func() *certs.Leaf {
	leaf, err := ldapFuzzCA().Issue(certs.LeafOptions{})
	if err != nil {
		panic(err)
	}
	return leaf
})

func ldapSeeds() [][]byte {
	ok := ldapExtResp(1, 0, "", ldapOID)
	return [][]byte{
		ok, ldapExtResp(1, 52, "unavailable", ""), ldapExtResp(0, 2, "bye", "1.3.6.1.4.1.1466.20036"),
		append(ok, 0x30, 0x00), ldapStartTLSReq(1), ldapBindReq(1, "cn=a", "b"), ldapSearchReq(2),
		ldapMsg(1, ber(0x42)), ber(0x30, berInt(1), ldapResult(24, 0, "", ber(0xa3, ber(0x04))), ber(0xa0)),
		{0x30, 0x84, 0, 0, 0, 0x05, 0x02, 0x01, 0x01, 0x42, 0x00}, {0x30, 0x80}, {0x30, 0x84, 0x7f, 0xff, 0xff, 0xff},
		[]byte("\x16\x03\x01\x00\x05hello"),
	}
}

// FuzzLDAPMessage: the decoder never panics, and what it accepts is one
// well-formed envelope whose fields are in range.
func FuzzLDAPMessage(f *testing.F) {
	for _, s := range ldapSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ldap.ParseMessage(data)
		if err != nil {
			if m != nil || !errors.Is(err, starttls.ErrProtocol) {
				t.Fatalf("error %v with message %v, or not ErrProtocol", err, m)
			}
			return
		}
		if data[0] != 0x30 || m.ID < 0 || m.Op < 0 || m.Op > 30 || m.ResultCode < 0 {
			t.Fatalf("accepted %x as %+v", data, m)
		}
		if len(m.Name)+len(m.Diagnostic)+len(m.MatchedDN) > len(data) {
			t.Fatalf("fields longer than the input: %+v", m)
		}
		_ = m.String()
		// Trailing bytes are never part of a message.
		if _, err := ldap.ParseMessage(append(data[:len(data):len(data)], 0)); err == nil {
			t.Fatalf("accepted %x with a trailing byte", data)
		}
	})
}

// FuzzLDAPClient runs the client against a fake server that sends the
// fuzzed bytes and hangs up: it must return in time without panicking and
// never succeed (there is no TLS server behind the bytes).
func FuzzLDAPClient(f *testing.F) {
	for _, s := range ldapSeeds() {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		ca := ldapFuzzCA()
		cli, srv := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			drained := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, srv); close(drained) }()
			_, _ = srv.Write(data)
			_ = srv.Close()
			<-drained
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cfg := &starttls.Config{
			TLSConfig:    &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"},
			PhaseTimeout: 200 * time.Millisecond,
		}
		start := time.Now()
		c, err := starttls.Client(ctx, cli, starttls.LDAP, cfg)
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("client took %v", d)
		}
		if err == nil {
			t.Fatalf("client succeeded (upgraded=%v) against input %x", c.Upgraded(), data)
		}
		if c != nil {
			t.Fatalf("non-nil Conn with error %v", err)
		}
		var pe *starttls.ProtocolError
		if !errors.As(err, &pe) {
			t.Fatalf("untyped error %v", err)
		}
		_ = cli.Close()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("fake server still blocked after the client returned")
		}
	})
}

// FuzzLDAPServer feeds the fuzzed bytes to Accept as the client's side of
// the dialogue. They are never a TLS client, so Accept must fail, in time,
// with a typed error, under both policies.
func FuzzLDAPServer(f *testing.F) {
	for _, s := range ldapSeeds() {
		f.Add(false, s)
		f.Add(true, s)
	}
	f.Add(false, append(ldapStartTLSReq(1), ldapSearchReq(2)...))
	f.Add(false, append(ldapBindReq(1, "cn=a", "b"), ldapStartTLSReq(2)...))
	f.Fuzz(func(t *testing.T, optional bool, data []byte) {
		cli, srv := net.Pipe()
		done := make(chan struct{})
		go func() {
			defer close(done)
			drained := make(chan struct{})
			go func() { _, _ = io.Copy(io.Discard, cli); close(drained) }()
			_, _ = cli.Write(data)
			_ = cli.Close()
			<-drained
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		cfg := &starttls.ServerConfig{
			TLSConfig:    &tls.Config{Certificates: []tls.Certificate{ldapFuzzLeaf().TLS}},
			PhaseTimeout: 200 * time.Millisecond,
		}
		if optional {
			cfg.Policy = starttls.Optional
		}
		start := time.Now()
		c, err := starttls.Accept(ctx, srv, starttls.LDAP, cfg)
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("Accept took %v", d)
		}
		if err == nil {
			// Only a plaintext handoff (Optional) may succeed without TLS.
			if !optional || c.Upgraded() {
				t.Fatalf("Accept succeeded (upgraded=%v) on input %x", c.Upgraded(), data)
			}
			c.Close()
		} else if c != nil {
			t.Fatalf("non-nil Conn with error %v", err)
		}
		_ = srv.Close()
		select {
		case <-done:
		case <-time.After(3 * time.Second):
			t.Fatal("fake client still blocked after Accept returned")
		}
	})
}
