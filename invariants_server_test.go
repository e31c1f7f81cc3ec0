package starttls_test

// Security invariants of the server side (DESIGN.md §4 and the server-side
// cases of security-catalogue.md §(a)): a scripted client misbehaves against
// the real Accept, and the tests assert what the server answered, what it
// never answered, and the error and events it reported.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// serverDialect is a well-behaved client's half of one protocol's dialogue.
type serverDialect struct {
	proto     starttls.Protocol
	hello     string // capability command, or "" when the greeting lists them
	helloEnd  string // the line that ends its reply
	upgrade   string
	goAhead   string // prefix of the go-ahead
	inject    string // a harmless command to pipeline after the upgrade
	authCmd   string // an authentication attempt
	authReply string // prefix of the required-policy refusal
	withArg   string // STARTTLS with an argument ("" when arguments are ignored)
	argReply  string
	greetEnd  string // prefix of the greeting's last line ("": one line)
	noExtras  bool   // configured capabilities are not listed (IRC)
}

var serverDialects = []serverDialect{
	{proto: starttls.SMTP, hello: "EHLO client.test", helloEnd: "250 ", upgrade: "STARTTLS", goAhead: "220 ",
		inject: "NOOP", authCmd: "AUTH PLAIN AGFsaWNlAHNlY3JldA==", authReply: "530 ", withArg: "STARTTLS now", argReply: "501 "},
	{proto: starttls.LMTP, hello: "LHLO client.test", helloEnd: "250 ", upgrade: "STARTTLS", goAhead: "220 ",
		inject: "NOOP", authCmd: "MAIL FROM:<a@b>", authReply: "530 ", withArg: "STARTTLS x", argReply: "501 "},
	{proto: starttls.IMAP, hello: "a1 CAPABILITY", helloEnd: "a1 OK", upgrade: "a2 STARTTLS", goAhead: "a2 OK",
		inject: "a3 NOOP", authCmd: "a2 LOGIN alice secret", authReply: "a2 NO", withArg: "a2 STARTTLS x", argReply: "a2 BAD"},
	{proto: starttls.POP3, hello: "CAPA", helloEnd: ".", upgrade: "STLS", goAhead: "+OK",
		inject: "CAPA", authCmd: "USER alice", authReply: "-ERR", withArg: "STLS x", argReply: "-ERR"},
	{proto: starttls.FTP, hello: "FEAT", helloEnd: "211 ", upgrade: "AUTH TLS", goAhead: "234 ",
		inject: "NOOP", authCmd: "USER alice", authReply: "530 ", withArg: "AUTH KERBEROS_V4", argReply: "504 "},
	{proto: starttls.NNTP, hello: "CAPABILITIES", helloEnd: ".", upgrade: "STARTTLS", goAhead: "382 ",
		inject: "DATE", authCmd: "AUTHINFO USER alice", authReply: "483 ", withArg: "STARTTLS x", argReply: "501 "},
	{proto: starttls.Sieve, hello: "CAPABILITY", helloEnd: "OK", upgrade: "STARTTLS", goAhead: "OK",
		inject: "NOOP", authCmd: `AUTHENTICATE "PLAIN" "AGFsaWNlAHNlY3JldA=="`, authReply: "NO (ENCRYPT-NEEDED)",
		withArg: "STARTTLS x", argReply: "NO", greetEnd: "OK"},
	{proto: starttls.IRC, greetEnd: "-", hello: "CAP LS 302", helloEnd: ":localhost CAP", upgrade: "STARTTLS", goAhead: ":localhost 670",
		inject: "PING x", authCmd: "NICK alice", authReply: ":localhost 451", noExtras: true},
}

// greet reads the server's greeting ("-": there is none).
func (d serverDialect) greet(p *fakePeer) string {
	if d.greetEnd == "-" {
		return ""
	}
	if d.greetEnd == "" {
		return p.line()
	}
	return strings.Join(p.readUntil(d.greetEnd), "\n")
}

// accepted is what Accept returned for one connection.
type accepted struct {
	conn   *starttls.Conn
	err    error
	events []starttls.Event
}

// acceptOne runs Accept for the first connection on a loopback listener and
// returns the client's end of it and a channel with Accept's result.
func acceptOne(t *testing.T, proto starttls.Protocol, cfg starttls.ServerConfig) (*fakePeer, <-chan accepted) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var mu sync.Mutex
	var events []starttls.Event
	cfg.OnEvent = func(_ net.Addr, e starttls.Event) {
		mu.Lock()
		events = append(events, e)
		mu.Unlock()
	}
	out := make(chan accepted, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			out <- accepted{err: err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		sc, err := starttls.Accept(ctx, c, proto, &cfg)
		mu.Lock()
		defer mu.Unlock()
		out <- accepted{conn: sc, err: err, events: events}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { c.Close() })
	return newFakePeer(t, c), out
}

// readUntil reads lines until one starts with prefix and returns them all.
func (p *fakePeer) readUntil(prefix string) []string {
	var lines []string
	for i := 0; i < 100; i++ {
		l, err := p.br.ReadString('\n')
		if err != nil {
			p.t.Errorf("reading until %q: %v (got %q)", prefix, err, lines)
			return lines
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if strings.HasPrefix(l, prefix) {
			return lines
		}
	}
	p.t.Errorf("no line starting %q in %q", prefix, lines)
	return lines
}

// greetAndHello reads the greeting and does the capability exchange.
func (d serverDialect) greetAndHello(p *fakePeer) []string {
	d.greet(p)
	p.send(d.hello + "\r\n")
	return p.readUntil(d.helloEnd)
}

func serverCfg(pki *testPKI) starttls.ServerConfig {
	return starttls.ServerConfig{TLSConfig: pki.Server, PhaseTimeout: 2 * time.Second}
}

func wait(t *testing.T, ch <-chan accepted) accepted {
	t.Helper()
	select {
	case a := <-ch:
		if a.conn != nil {
			t.Cleanup(func() { a.conn.Close() })
		}
		return a
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not return")
	}
	return accepted{}
}

// upgradeAccepted completes the client's TLS handshake over p, trusting
// the test CA, and waits for the Accept behind res to end upgraded.
func upgradeAccepted(t *testing.T, p *fakePeer, pki *testPKI, res <-chan accepted) (*tls.Conn, accepted) {
	t.Helper()
	tc := tls.Client(p.conn, &tls.Config{RootCAs: pki.CA.Pool(), ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	a := wait(t, res)
	if a.err != nil {
		t.Fatal(a.err)
	}
	if !a.conn.Upgraded() {
		t.Fatal("not upgraded")
	}
	return tc, a
}

// Invariant 2, Close policy (default): "STARTTLS\r\nNOOP\r\n" in one
// segment closes the connection without a go-ahead and without answering
// the NOOP, reports an injection error and an event.
func TestServerCommandInjectionClose(t *testing.T) {
	pki := newPKI(t)
	for _, d := range serverDialects {
		t.Run(string(d.proto), func(t *testing.T) {
			p, res := acceptOne(t, d.proto, serverCfg(pki))
			d.greetAndHello(p)
			p.send(d.upgrade + "\r\n" + d.inject + "\r\n")
			if rest := p.rest(); rest != "" {
				t.Errorf("server answered %q to a pipelined STARTTLS", rest)
			}
			a := wait(t, res)
			wantErr(t, a.err, starttls.ErrInjection, "injection")
			if len(a.events) != 1 || a.events[0].Kind != starttls.EventCommandInjection || !strings.Contains(string(a.events[0].Data), d.inject) {
				t.Errorf("events %+v, want one command-injection with %q", a.events, d.inject)
			}
		})
	}
}

// Invariant 2, Discard policy: the upgrade goes on, the pipelined command
// is never executed or answered inside TLS, and the application sees the
// event on the Conn.
func TestServerCommandInjectionDiscard(t *testing.T) {
	pki := newPKI(t)
	for _, d := range serverDialects {
		t.Run(string(d.proto), func(t *testing.T) {
			cfg := serverCfg(pki)
			cfg.Injection = starttls.Discard
			p, res := acceptOne(t, d.proto, cfg)
			d.greetAndHello(p)
			p.send(d.upgrade + "\r\n" + d.inject + "\r\n")
			p.expect(d.goAhead)
			tc, a := upgradeAccepted(t, p, pki, res)
			if len(a.conn.Events) != 1 || a.conn.Events[0].Kind != starttls.EventCommandInjection {
				t.Errorf("Conn.Events %+v, want the injection", a.conn.Events)
			}
			// The first thing the application reads inside TLS is what the
			// client sent inside TLS, not the pipelined plaintext.
			if _, err := tc.Write([]byte("FIRST-IN-TLS\r\n")); err != nil {
				t.Fatal(err)
			}
			_ = a.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, err := a.conn.ReadLine()
			if err != nil || line != "FIRST-IN-TLS" {
				t.Errorf("application read %q, %v; want FIRST-IN-TLS", line, err)
			}
		})
	}
}

// Invariant 4: under Required, no authentication is advertised before TLS
// (IMAP says LOGINDISABLED), and authentication is refused with the
// protocol's "TLS required" reply; under Optional it is advertised.
func TestServerNoAuthBeforeTLS(t *testing.T) {
	pki := newPKI(t)
	extra := []string{"AUTH PLAIN LOGIN", "AUTH=PLAIN", "SASL PLAIN", "USER", "SIZE 1000"}
	for _, d := range serverDialects {
		if d.noExtras {
			continue
		}
		for _, policy := range []starttls.ServerPolicy{starttls.Required, starttls.Optional} {
			name := map[starttls.ServerPolicy]string{starttls.Required: "required", starttls.Optional: "optional"}[policy]
			t.Run(string(d.proto)+"/"+name, func(t *testing.T) {
				cfg := serverCfg(pki)
				cfg.Policy = policy
				cfg.Capabilities = extra
				p, res := acceptOne(t, d.proto, cfg)
				greeting := d.greet(p)
				p.send(d.hello + "\r\n")
				all := strings.Join(append([]string{greeting}, p.readUntil(d.helloEnd)...), "\n")
				// FTP's "AUTH TLS" is its STARTTLS, not authentication.
				all = strings.ReplaceAll(all, "AUTH TLS", "")
				hasAuth := strings.Contains(all, "AUTH") || strings.Contains(all, "SASL") || strings.Contains(all, "\nUSER")
				if !strings.Contains(all, "SIZE") || !strings.Contains(all, "1000") {
					t.Errorf("harmless capability dropped: %q", all)
				}
				if policy == starttls.Required {
					if hasAuth {
						t.Errorf("authentication advertised before TLS: %q", all)
					}
					if d.proto == starttls.IMAP && !strings.Contains(all, "LOGINDISABLED") {
						t.Errorf("IMAP without LOGINDISABLED: %q", all)
					}
					p.send(d.authCmd + "\r\n")
					if r := p.line(); !strings.HasPrefix(r, d.authReply) {
						t.Errorf("%q answered %q, want %q", d.authCmd, r, d.authReply)
					}
					p.send(d.upgrade + "\r\n")
					p.expect(d.goAhead)
					p.conn.Close()
				} else {
					if !hasAuth {
						t.Errorf("optional policy hid AUTH: %q", all)
					}
					if d.proto == starttls.IMAP && strings.Contains(all, "LOGINDISABLED") {
						t.Errorf("optional policy advertised LOGINDISABLED: %q", all)
					}
					p.conn.Close()
				}
				wait(t, res)
			})
		}
	}
}

// Under Required, every non-dialogue command is refused and the session
// stays in the dialogue; under Optional the first one hands the plaintext
// session to the application with that command unread.
func TestServerPolicies(t *testing.T) {
	pki := newPKI(t)
	for _, d := range serverDialects {
		t.Run(string(d.proto)+"/optional-handoff", func(t *testing.T) {
			cfg := serverCfg(pki)
			cfg.Policy = starttls.Optional
			p, res := acceptOne(t, d.proto, cfg)
			d.greetAndHello(p)
			p.send(d.authCmd + "\r\n")
			a := wait(t, res)
			if a.err != nil {
				t.Fatal(a.err)
			}
			if a.conn.Upgraded() {
				t.Fatal("handed-off session claims TLS")
			}
			if l, err := a.conn.ReadLine(); err != nil || l != d.authCmd {
				t.Errorf("application read %q, %v; want %q", l, err, d.authCmd)
			}
		})
	}
}

// Malformed upgrades: STARTTLS with an argument is a syntax error; SMTP
// STARTTLS before EHLO is a sequence error; bare LF ends a line.
func TestServerDialogueRules(t *testing.T) {
	pki := newPKI(t)
	for _, d := range serverDialects {
		// IRC's STARTTLS ignores arguments: nothing to test there.
		t.Run(string(d.proto)+"/argument", func(t *testing.T) {
			if d.withArg == "" {
				return
			}
			p, res := acceptOne(t, d.proto, serverCfg(pki))
			d.greetAndHello(p)
			p.send(d.withArg + "\r\n")
			if r := p.line(); !strings.HasPrefix(r, d.argReply) {
				t.Errorf("%q answered %q, want %q", d.withArg, r, d.argReply)
			}
			p.conn.Close()
			wait(t, res)
		})
		t.Run(string(d.proto)+"/bare-lf", func(t *testing.T) {
			p, res := acceptOne(t, d.proto, serverCfg(pki))
			d.greet(p)
			p.send(d.hello + "\n")
			p.readUntil(d.helloEnd)
			p.send(d.upgrade + "\n")
			p.expect(d.goAhead)
			p.conn.Close()
			wait(t, res)
		})
	}
	t.Run("smtp/starttls-before-ehlo", func(t *testing.T) {
		p, res := acceptOne(t, starttls.SMTP, serverCfg(pki))
		p.line()
		p.send("STARTTLS\r\n")
		p.expect("503 ")
		p.conn.Close()
		wait(t, res)
	})
	t.Run("smtp/helo-does-not-offer-tls", func(t *testing.T) {
		p, res := acceptOne(t, starttls.SMTP, serverCfg(pki))
		p.line()
		p.send("HELO client.test\r\nMAIL FROM:<a@b>\r\n")
		p.expect("250 ")
		p.expect("530 ")
		p.conn.Close()
		wait(t, res)
	})
}

// hostileClient is a client that misbehaves before TLS: script plays it
// against a server configured by cfg, and Accept must fail with class.
type hostileClient struct {
	name   string
	cfg    func(*starttls.ServerConfig)
	script func(p *fakePeer)
	class  error
}

// runHostileClients plays each case against Accept with a short phase
// deadline and requires its typed error within limit.
func runHostileClients(t *testing.T, pki *testPKI, proto starttls.Protocol, cases []hostileClient, limit time.Duration) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := serverCfg(pki)
			cfg.PhaseTimeout = 300 * time.Millisecond
			if tc.cfg != nil {
				tc.cfg(&cfg)
			}
			p, res := acceptOne(t, proto, cfg)
			start := time.Now()
			go tc.script(p)
			a := wait(t, res)
			if a.err == nil || !errors.Is(a.err, tc.class) {
				t.Fatalf("Accept: %v, want %v", a.err, tc.class)
			}
			if el := time.Since(start); el > limit {
				t.Errorf("took %v", el)
			}
		})
	}
}

// Invariant 5 (server): limits and deadlines on what a client may do
// before TLS, each a typed error within the deadline.
func TestServerHostileClients(t *testing.T) {
	pki := newPKI(t)
	d := serverDialects[0]
	cases := []hostileClient{
		{"silent", nil, func(p *fakePeer) { p.rest() }, starttls.ErrTimeout},
		{"slowloris", nil, func(p *fakePeer) {
			p.line()
			// One byte every 100 ms: each byte is progress, but the line
			// never ends; the per-command deadline still expires.
			for i := 0; i < 40; i++ {
				if _, err := p.conn.Write([]byte("E")); err != nil {
					return
				}
				time.Sleep(100 * time.Millisecond)
			}
		}, starttls.ErrTimeout},
		{"huge-line", nil, func(p *fakePeer) { p.send(strings.Repeat("N", 100<<10)); p.rest() }, starttls.ErrLineTooLong},
		{"byte-budget", func(c *starttls.ServerConfig) { c.MaxPreTLSBytes = 4096; c.MaxCommands = 10000 }, func(p *fakePeer) {
			for i := 0; i < 200; i++ {
				p.send("NOOP " + strings.Repeat("z", 100) + "\r\n")
			}
			p.rest()
		}, starttls.ErrTooMuchData},
		{"too-many-commands", func(c *starttls.ServerConfig) { c.MaxCommands = 5 }, func(p *fakePeer) {
			p.send(strings.Repeat("NOOP\r\n", 10))
			p.rest()
		}, starttls.ErrProtocol},
		{"garbage-tls", nil, func(p *fakePeer) {
			d.greetAndHello(p)
			p.send(d.upgrade + "\r\n")
			p.expect(d.goAhead)
			p.send("\x16\x03\x01\x00\x10this is no ClientHello\r\n")
			p.rest()
		}, starttls.ErrHandshake},
		{"stall-in-handshake", nil, func(p *fakePeer) {
			d.greetAndHello(p)
			p.send(d.upgrade + "\r\n")
			p.expect(d.goAhead)
			p.rest()
		}, starttls.ErrTimeout},
		{"quit", nil, func(p *fakePeer) { p.send("QUIT\r\n"); p.rest() }, starttls.ErrClosed},
	}
	runHostileClients(t, pki, d.proto, cases, 3*time.Second)
}

// Implicit TLS variants accept only TLS from the first byte.
func TestServerImplicitRejectsPlaintext(t *testing.T) {
	pki := newPKI(t)
	for _, proto := range []starttls.Protocol{starttls.SMTPS, starttls.IMAPS, starttls.POP3S} {
		t.Run(string(proto), func(t *testing.T) {
			p, res := acceptOne(t, proto, serverCfg(pki))
			p.send("EHLO plaintext\r\n")
			a := wait(t, res)
			wantErr(t, a.err, starttls.ErrHandshake, "handshake")
			p.conn.Close()
		})
	}
}
