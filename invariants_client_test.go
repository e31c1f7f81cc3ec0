package starttls_test

// Security invariants of the client side (DESIGN.md §4, and the client-side
// cases of security-catalogue.md §(b)). Each test drives the real client
// against a scripted server on loopback that misbehaves in one precise way,
// and asserts the typed error and that nothing unsafe happened on the wire.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// fakePeer is one side of a scripted dialogue.
type fakePeer struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader
}

func newFakePeer(t testing.TB, c net.Conn) *fakePeer {
	return &fakePeer{t: t, conn: c, br: bufio.NewReader(c)}
}

// send writes s in one write, so that several lines share a segment.
func (p *fakePeer) send(s string) {
	_, _ = p.conn.Write([]byte(s))
}

// line reads one line without its ending; "" on error.
func (p *fakePeer) line() string {
	l, _ := p.br.ReadString('\n')
	return strings.TrimRight(l, "\r\n")
}

// expect reads one line and checks its prefix (case-insensitive).
func (p *fakePeer) expect(prefix string) string {
	l := p.line()
	if !strings.HasPrefix(strings.ToUpper(l), strings.ToUpper(prefix)) {
		p.t.Errorf("peer got %q, want a line starting %q", l, prefix)
	}
	return l
}

// rest returns everything the other side sends until it closes.
func (p *fakePeer) rest() string {
	_ = p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, _ := io.ReadAll(p.br)
	return string(b)
}

// tls runs a TLS handshake as the server; nil if it failed.
func (p *fakePeer) tls(cfg *tls.Config) *fakePeer {
	tc := tls.Server(p.conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil
	}
	return newFakePeer(p.t, tc)
}

// fakeServer serves one connection on loopback with script and returns the
// address. The script is bounded by a 10 s deadline; cleanup waits for it.
func fakeServer(t testing.TB, script func(p *fakePeer)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		script(newFakePeer(t, c))
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().String()
}

// dialect is a correct server's half of one protocol's dialogue.
type dialect struct {
	proto    starttls.Protocol
	greeting string
	capsCmd  string // prefix of the client's capability command
	caps     string // capability reply offering STARTTLS
	noCaps   string // capability reply not offering it
	upgrade  string // prefix of the client's STARTTLS command
	goAhead  string
	postCaps string // post-TLS capability command prefix ... reply below
	postRepl string
	refusals []string // replies to STARTTLS that are not a go-ahead
	// post, when set, replaces postCaps/postRepl: pairs of (command
	// prefix, reply); an empty command means the server speaks unasked.
	post []string
}

var dialects = []dialect{
	{
		proto: starttls.SMTP, greeting: "220 fake ESMTP\r\n", capsCmd: "EHLO ",
		caps: "250-fake\r\n250-PIPELINING\r\n250 STARTTLS\r\n", noCaps: "250-fake\r\n250 PIPELINING\r\n",
		upgrade: "STARTTLS", goAhead: "220 2.0.0 go ahead\r\n",
		postCaps: "EHLO ", postRepl: "250-fake\r\n250 AUTH PLAIN\r\n",
		refusals: []string{"454 4.7.0 TLS not available\r\n", "502 5.5.2 not implemented\r\n",
			"500 5.5.1 unrecognized\r\n", "501 5.5.4 syntax\r\n", "354 go on\r\n", "221 bye\r\n",
			"250 ok\r\n", "530 5.7.0 no\r\n"},
	},
	{
		proto: starttls.LMTP, greeting: "220 fake LMTP\r\n", capsCmd: "LHLO ",
		caps: "250-fake\r\n250 STARTTLS\r\n", noCaps: "250 fake\r\n",
		upgrade: "STARTTLS", goAhead: "220 go ahead\r\n",
		postCaps: "LHLO ", postRepl: "250 fake\r\n",
		refusals: []string{"454 4.7.0 TLS not available\r\n"},
	},
	{
		proto: starttls.IMAP, greeting: "* OK fake IMAP\r\n", capsCmd: "a1 CAPABILITY",
		caps: "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n", noCaps: "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na1 OK done\r\n",
		upgrade: "a2 STARTTLS", goAhead: "a2 OK begin TLS\r\n",
		postCaps: "a3 CAPABILITY", postRepl: "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\na3 OK done\r\n",
		refusals: []string{"a2 NO not now\r\n", "a2 BAD what\r\n", "* BYE going\r\na2 NO bye\r\n"},
	},
	{
		proto: starttls.POP3, greeting: "+OK fake POP3\r\n", capsCmd: "CAPA",
		caps: "+OK\r\nUSER\r\nSTLS\r\n.\r\n", noCaps: "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n",
		upgrade: "STLS", goAhead: "+OK begin TLS\r\n",
		postCaps: "CAPA", postRepl: "+OK\r\nSASL PLAIN\r\n.\r\n",
		refusals: []string{"-ERR not now\r\n", "-ERR [IN-USE] busy\r\n"},
	},
	{
		proto: starttls.FTP, greeting: "220-fake FTP\r\n220 welcome\r\n", capsCmd: "FEAT",
		caps: "211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n211 End\r\n", noCaps: "211-Features:\r\n MDTM\r\n211 End\r\n",
		upgrade: "AUTH TLS", goAhead: "234 go ahead\r\n",
		post:     []string{"PBSZ 0", "200 PBSZ=0\r\n", "PROT P", "200 protected\r\n", "FEAT", "211-Features:\r\n PBSZ\r\n211 End\r\n"},
		refusals: []string{"534 policy\r\n", "500 unknown\r\n", "431 unavailable\r\n", "530 log in first\r\n"},
	},
	{
		proto: starttls.NNTP, greeting: "200 fake NNTP\r\n", capsCmd: "CAPABILITIES",
		caps: "101 caps\r\nVERSION 2\r\nSTARTTLS\r\n.\r\n", noCaps: "101 caps\r\nVERSION 2\r\nAUTHINFO USER\r\n.\r\n",
		upgrade: "STARTTLS", goAhead: "382 go ahead\r\n",
		postCaps: "CAPABILITIES", postRepl: "101 caps\r\nVERSION 2\r\nAUTHINFO USER\r\n.\r\n",
		refusals: []string{"580 cannot\r\n", "502 no\r\n", "483 no\r\n"},
	},
	{
		proto: starttls.Sieve,
		caps:  "\"IMPLEMENTATION\" \"fake\"\r\n\"STARTTLS\"\r\nOK \"ready\"\r\n", noCaps: "\"IMPLEMENTATION\" \"fake\"\r\n\"SASL\" \"PLAIN\"\r\nOK\r\n",
		upgrade: "STARTTLS", goAhead: "OK \"go ahead\"\r\n",
		post:     []string{"", "\"IMPLEMENTATION\" \"fake\"\r\n\"SASL\" \"PLAIN\"\r\nOK\r\n"},
		refusals: []string{"NO \"not now\"\r\n", "BYE \"going\"\r\n"},
	},
	{
		proto: starttls.IRC, capsCmd: "CAP LS",
		caps: ":srv NOTICE * :*** hello\r\n:srv CAP * LS :multi-prefix tls\r\n", noCaps: ":srv CAP * LS :multi-prefix\r\n",
		upgrade: "STARTTLS", goAhead: ":srv 670 * :go ahead\r\n",
		post:     []string{"CAP LS", "", "PING :starttls-caps-end", ":srv CAP * LS :multi-prefix sasl\r\n:srv PONG srv :starttls-caps-end\r\n"},
		refusals: []string{":srv 691 * :failed\r\n", ":srv 421 * STARTTLS :Unknown command\r\n", "ERROR :closing\r\n"},
	},
	{
		proto: starttls.HTTP, upgrade: "OPTIONS * HTTP/1.1",
		goAhead:  "HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n",
		post:     []string{"", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"}, // the answer to OPTIONS, inside TLS
		refusals: []string{"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 501 Not Implemented\r\n\r\n", "HTTP/1.1 426 Upgrade Required\r\n\r\n"},
	},
}

// offer plays the greeting and the capability exchange with caps as the
// capability reply (for ManageSieve the greeting is the capability list).
func (d dialect) offer(p *fakePeer, caps string) {
	if d.capsCmd == "" {
		p.send(d.greeting + caps)
		return
	}
	p.send(d.greeting)
	p.expect(d.capsCmd)
	if d.proto == starttls.IRC { // the client's sentinel after CAP LS
		p.expect("PING :starttls-caps-end")
		caps += ":srv PONG srv :starttls-caps-end\r\n"
	}
	p.send(caps)
}

// readUpgrade reads the client's upgrade request (for HTTP, with its headers).
func (d dialect) readUpgrade(p *fakePeer) {
	p.expect(d.upgrade)
	if d.proto == starttls.HTTP {
		for i := 0; i < 20 && p.line() != ""; i++ {
		}
	}
}

// toUpgrade plays a correct server up to the client's STARTTLS command.
func (d dialect) toUpgrade(p *fakePeer) {
	d.offer(p, d.caps)
	d.readUpgrade(p)
}

// postTLS plays the server's part of the capability query inside TLS.
func (d dialect) postTLS(p *fakePeer) {
	post := d.post
	if post == nil && d.postCaps != "" {
		post = []string{d.postCaps, d.postRepl}
	}
	for i := 0; i+1 < len(post); i += 2 {
		if post[i] != "" {
			p.expect(post[i])
		}
		p.send(post[i+1])
	}
}

// clientCfg is a strict client trusting pki, with short phase timeouts.
func clientCfg(pki *testPKI) *starttls.Config {
	return &starttls.Config{TLSConfig: pki.Client.Clone(), PhaseTimeout: 2 * time.Second}
}

func dial(t testing.TB, d dialect, addr string, cfg *starttls.Config) (*starttls.Conn, error) {
	t.Helper()
	return dialProto(t, d.proto, addr, cfg)
}

// dialProto dials addr as proto within 10 s and closes the Conn when the
// test ends.
func dialProto(t testing.TB, proto starttls.Protocol, addr string, cfg *starttls.Config) (*starttls.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, proto, addr, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, err
}

// wantFallback checks that an opportunistic Dial succeeded in plaintext
// and that Conn.Fallback names want as the reason.
func wantFallback(t testing.TB, c *starttls.Conn, err, want error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	if c.Upgraded() || !errors.Is(c.Fallback, want) {
		t.Fatalf("upgraded=%v fallback=%v", c.Upgraded(), c.Fallback)
	}
}

// wantAppData writes data from the client side tc and checks that the
// accepted Conn c reads exactly it: the application stream after TLS.
func wantAppData(t testing.TB, tc io.Writer, c *starttls.Conn, data []byte) {
	t.Helper()
	if _, err := tc.Write(data); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(data))
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, b); err != nil || !bytes.Equal(b, data) {
		t.Errorf("application read %q, %v; want %q", b, err, data)
	}
}

// wantErr checks the error's class and that its text names the condition.
func wantErr(t testing.TB, err, class error, word string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error; want %v", class)
	}
	if !errors.Is(err, class) {
		t.Fatalf("error %q is not %v", err, class)
	}
	if !strings.Contains(strings.ToLower(err.Error()), word) {
		t.Errorf("error %q does not name %q", err, word)
	}
}

func TestClientHappyPathAllDialects(t *testing.T) {
	pki := newPKI(t)
	for _, d := range dialects {
		t.Run(string(d.proto), func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				d.toUpgrade(p)
				p.send(d.goAhead)
				if p = p.tls(pki.Server); p == nil {
					t.Error("handshake failed")
					return
				}
				d.postTLS(p)
				p.rest()
			})
			c, err := dial(t, d, addr, clientCfg(pki))
			if err != nil {
				t.Fatal(err)
			}
			if !c.Upgraded() || c.Fallback != nil {
				t.Fatalf("not upgraded: %+v", c)
			}
		})
	}
}

// Invariant 3: STARTTLS not advertised is an error naming "not offered"
// (stripping of the capability), and nothing else is sent in plaintext.
func TestClientStrippedCapability(t *testing.T) {
	pki := newPKI(t)
	for _, d := range dialects {
		if d.noCaps == "" {
			continue // HTTP: the upgrade request is the only question
		}
		t.Run(string(d.proto), func(t *testing.T) {
			after := make(chan string, 1)
			addr := fakeServer(t, func(p *fakePeer) {
				d.offer(p, d.noCaps)
				after <- p.rest()
			})
			_, err := dial(t, d, addr, clientCfg(pki))
			wantErr(t, err, starttls.ErrNotOffered, "not offered")
			if rest := <-after; rest != "" {
				t.Errorf("client sent %q in plaintext after seeing no STARTTLS", rest)
			}
		})
	}
}

// The capability query itself refused (EHLO 500: the legacy downgrade that
// leaves only HELO; CAPA -ERR; CAPABILITY BAD) means STARTTLS cannot be had.
func TestClientCapabilityQueryRefused(t *testing.T) {
	pki := newPKI(t)
	cases := map[starttls.Protocol]string{
		starttls.SMTP: "500 5.5.1 EHLO not understood\r\n",
		starttls.IMAP: "a1 BAD unknown command\r\n",
		starttls.POP3: "-ERR no CAPA\r\n",
	}
	for _, d := range dialects {
		reply, ok := cases[d.proto]
		if !ok {
			continue
		}
		t.Run(string(d.proto), func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				p.send(d.greeting)
				p.expect(d.capsCmd)
				p.send(reply)
				p.rest()
			})
			_, err := dial(t, d, addr, clientCfg(pki))
			wantErr(t, err, starttls.ErrNotOffered, "not offered")
		})
	}
}

// Invariant 3: every reply to STARTTLS other than the go-ahead is "refused",
// and the client neither handshakes nor sends anything else in plaintext.
func TestClientStartTLSRefused(t *testing.T) {
	pki := newPKI(t)
	for _, d := range dialects {
		for _, refusal := range d.refusals {
			t.Run(string(d.proto)+"/"+strings.Fields(refusal)[0]+strings.Fields(refusal)[1], func(t *testing.T) {
				after := make(chan string, 1)
				addr := fakeServer(t, func(p *fakePeer) {
					d.toUpgrade(p)
					p.send(refusal)
					after <- p.rest()
				})
				c, err := dial(t, d, addr, clientCfg(pki))
				if err == nil {
					t.Fatalf("refusal %q accepted, upgraded=%v", refusal, c.Upgraded())
				}
				if !errors.Is(err, starttls.ErrRefused) && !errors.Is(err, starttls.ErrClosed) {
					t.Fatalf("refusal %q gave %v, want refused", refusal, err)
				}
				if rest := <-after; rest != "" {
					t.Errorf("client sent %q after the refusal", rest)
				}
			})
		}
	}
}

// An IMAP continuation request in answer to STARTTLS is not a go-ahead.
func TestClientIMAPContinuationIsNotGoAhead(t *testing.T) {
	pki := newPKI(t)
	d := dialects[2]
	addr := fakeServer(t, func(p *fakePeer) {
		d.toUpgrade(p)
		p.send("+ go on\r\n")
		p.rest()
	})
	_, err := dial(t, d, addr, clientCfg(pki))
	wantErr(t, err, starttls.ErrProtocol, "continuation")
}

// Opportunistic mode falls back to plaintext only for "not offered" and
// "refused", and says so in Conn.Fallback; never for injection, a bad
// certificate or a malformed dialogue.
func TestClientOpportunistic(t *testing.T) {
	pki := newPKI(t)
	d := dialects[0]
	cfg := clientCfg(pki)
	cfg.Opportunistic = true

	t.Run("not-offered", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			d.offer(p, d.noCaps)
			p.rest()
		})
		c, err := dial(t, d, addr, cfg)
		wantFallback(t, c, err, starttls.ErrNotOffered)
	})
	t.Run("refused", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			d.toUpgrade(p)
			p.send("454 4.7.0 no TLS\r\n")
			p.rest()
		})
		c, err := dial(t, d, addr, cfg)
		wantFallback(t, c, err, starttls.ErrRefused)
	})
	t.Run("injection-is-still-an-error", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			d.toUpgrade(p)
			p.send(d.goAhead + "250 injected\r\n")
			p.rest()
		})
		_, err := dial(t, d, addr, cfg)
		wantErr(t, err, starttls.ErrInjection, "injection")
	})
	t.Run("certificate-is-still-an-error", func(t *testing.T) {
		other := newPKI(t)
		addr := fakeServer(t, func(p *fakePeer) {
			d.toUpgrade(p)
			p.send(d.goAhead)
			p.tls(other.Server)
		})
		_, err := dial(t, d, addr, cfg)
		wantErr(t, err, starttls.ErrCertificate, "certificate")
	})
	t.Run("malformed-greeting-is-still-an-error", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) {
			p.send("hello there\r\n")
			p.rest()
		})
		_, err := dial(t, d, addr, cfg)
		wantErr(t, err, starttls.ErrProtocol, "")
	})
}

// Invariant 1 (client): bytes the server sends after its go-ahead, whole
// lines or a partial line, in the same segment, are an "injection" error,
// and the client never starts TLS on top of them.
func TestClientResponseInjection(t *testing.T) {
	pki := newPKI(t)
	injections := map[starttls.Protocol][]string{
		starttls.SMTP:  {"250-injected\r\n250 AUTH PLAIN\r\n", "250 partial line without end", "\r\n"},
		starttls.LMTP:  {"250 injected\r\n"},
		starttls.IMAP:  {"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n", "a3 OK early tagged", "* OK injected\r\n"},
		starttls.POP3:  {"+OK injected\r\n", "SASL PLAIN\r\n.\r\n", "+"},
		starttls.FTP:   {"200 PROT P\r\n", "2"},
		starttls.NNTP:  {"101 caps\r\n"},
		starttls.Sieve: {"\"SASL\" \"PLAIN\"\r\nOK\r\n", "\""},
		starttls.IRC:   {":srv CAP * LS :sasl\r\n", ":"},
		starttls.HTTP:  {"HTTP/1.1 200 OK\r\n\r\n", "<html>"},
	}
	for _, d := range dialects {
		for i, inj := range injections[d.proto] {
			t.Run(string(d.proto)+"/"+string(rune('a'+i)), func(t *testing.T) {
				after := make(chan string, 1)
				addr := fakeServer(t, func(p *fakePeer) {
					d.toUpgrade(p)
					p.send(d.goAhead + inj)
					after <- p.rest()
				})
				_, err := dial(t, d, addr, clientCfg(pki))
				wantErr(t, err, starttls.ErrInjection, "injection")
				// Not one byte of a ClientHello: TLS never started.
				if rest := <-after; rest != "" {
					t.Errorf("client sent %d bytes after the injected go-ahead", len(rest))
				}
			})
		}
	}
}

// A server that talks before it is asked (its go-ahead pipelined with the
// capability reply, before the client sent STARTTLS) is injecting too.
func TestClientEarlyGoAhead(t *testing.T) {
	pki := newPKI(t)
	for _, d := range dialects {
		if d.proto == starttls.HTTP {
			// The client reads nothing before its request, so bytes sent
			// before it are indistinguishable from the answer.
			continue
		}
		t.Run(string(d.proto), func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				d.offer(p, d.caps+d.goAhead)
				p.rest()
			})
			_, err := dial(t, d, addr, clientCfg(pki))
			wantErr(t, err, starttls.ErrInjection, "injection")
		})
	}
}

// Nothing learned before TLS survives it: capabilities after the upgrade
// come only from the query made inside TLS (pre-TLS untagged data and
// pre-TLS capabilities are discarded).
func TestClientPreTLSStateDiscarded(t *testing.T) {
	pki := newPKI(t)
	pre := map[starttls.Protocol]string{
		starttls.SMTP:  "250-fake\r\n250-X-PRE-TLS\r\n250 STARTTLS\r\n",
		starttls.LMTP:  "250-fake\r\n250-X-PRE-TLS\r\n250 STARTTLS\r\n",
		starttls.IMAP:  "* CAPABILITY IMAP4rev1 STARTTLS X-PRE-TLS\r\n* 3 EXISTS\r\n* OK [ALERT] pre-TLS\r\na1 OK done\r\n",
		starttls.POP3:  "+OK\r\nSTLS\r\nX-PRE-TLS\r\n.\r\n",
		starttls.FTP:   "211-Features:\r\n AUTH TLS\r\n X-PRE-TLS\r\n211 End\r\n",
		starttls.NNTP:  "101 caps\r\nSTARTTLS\r\nX-PRE-TLS\r\n.\r\n",
		starttls.Sieve: "\"STARTTLS\"\r\n\"X-PRE-TLS\"\r\nOK\r\n",
		starttls.IRC:   ":srv CAP * LS * :tls\r\n:srv CAP * LS :X-PRE-TLS\r\n",
	}
	for _, d := range dialects {
		if pre[d.proto] == "" {
			continue // HTTP learns nothing before the upgrade
		}
		t.Run(string(d.proto), func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				d.offer(p, pre[d.proto])
				d.readUpgrade(p)
				p.send(d.goAhead)
				if p = p.tls(pki.Server); p == nil {
					return
				}
				d.postTLS(p)
				p.rest()
			})
			c, err := dial(t, d, addr, clientCfg(pki))
			if err != nil {
				t.Fatal(err)
			}
			if !c.CapabilitiesBefore.Has("X-PRE-TLS") {
				t.Errorf("pre-TLS capabilities %q lack X-PRE-TLS: test is broken", c.CapabilitiesBefore)
			}
			if c.Capabilities.Has("X-PRE-TLS") {
				t.Errorf("pre-TLS capability survived the upgrade: %q", c.Capabilities)
			}
		})
	}
}

// An IMAP PREAUTH greeting makes STARTTLS impossible: always an error,
// even for an opportunistic client.
func TestClientIMAPPreauth(t *testing.T) {
	pki := newPKI(t)
	cfg := clientCfg(pki)
	cfg.Opportunistic = true
	addr := fakeServer(t, func(p *fakePeer) {
		p.send("* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in as alice\r\n")
		p.rest()
	})
	_, err := dial(t, dialects[2], addr, cfg)
	wantErr(t, err, starttls.ErrPreauth, "preauth")
}

// A malformed or hostile greeting never lets the client off TLS.
func TestClientMalformedGreeting(t *testing.T) {
	pki := newPKI(t)
	cases := map[starttls.Protocol][]string{
		starttls.SMTP: {"hello\r\n", "\r\n", "2\r\n", "999 weird\r\n", "220-unfinished\r\n221 changed code\r\n", "554 5.3.2 no service\r\n"},
		starttls.IMAP: {"hello\r\n", "\r\n", "* WHAT\r\n", "a1 OK untagged expected\r\n", "* BYE go away\r\n"},
		starttls.POP3: {"hello\r\n", "\r\n", "+OKAY\r\n", "-ERR busy\r\n"},
	}
	for _, d := range dialects {
		for i, g := range cases[d.proto] {
			t.Run(string(d.proto)+"/"+string(rune('a'+i)), func(t *testing.T) {
				cfg := clientCfg(pki)
				cfg.Opportunistic = true // still no plaintext session
				addr := fakeServer(t, func(p *fakePeer) {
					p.send(g)
					p.rest()
				})
				c, err := dial(t, d, addr, cfg)
				if err == nil {
					t.Fatalf("greeting %q accepted (upgraded=%v)", g, c.Upgraded())
				}
				if !errors.Is(err, starttls.ErrProtocol) && !errors.Is(err, starttls.ErrRefused) {
					t.Fatalf("greeting %q: %v, want protocol or refused", g, err)
				}
			})
		}
	}
}

// Invariant 3: certificate problems are errors naming the problem, and SNI
// carries the name being verified.
func TestClientCertificates(t *testing.T) {
	pki := newPKI(t)
	d := dialects[0]
	issue := func(o certs.LeafOptions) *tls.Config {
		leaf, err := pki.CA.Issue(o)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}
	}
	self, err := certs.SelfSigned("localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		server *tls.Config
		word   string
	}{
		{"untrusted-ca", newPKI(t).Server, "unknown authority"},
		{"self-signed", &tls.Config{Certificates: []tls.Certificate{self.TLS}}, "certificate"},
		{"name-mismatch", issue(certs.LeafOptions{Hosts: []string{"other.test"}}), "127.0.0.1"},
		{"expired", issue(certs.LeafOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)}), "expired"},
		{"not-yet-valid", issue(certs.LeafOptions{NotBefore: time.Now().Add(24 * time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}), "certificate"},
		{"wrong-eku", issue(certs.LeafOptions{Modify: func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} }}), "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, func(p *fakePeer) {
				d.toUpgrade(p)
				p.send(d.goAhead)
				if p.tls(tc.server) != nil {
					t.Error("client completed a handshake with a bad certificate")
				}
			})
			_, err := dial(t, d, addr, clientCfg(pki))
			wantErr(t, err, starttls.ErrCertificate, tc.word)
		})
	}

	t.Run("sni", func(t *testing.T) {
		got := make(chan string, 1)
		addr := fakeServer(t, func(p *fakePeer) {
			d.toUpgrade(p)
			p.send(d.goAhead)
			cfg := pki.Server.Clone()
			cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
				got <- h.ServerName
				return nil, nil
			}
			if p = p.tls(cfg); p != nil {
				d.postTLS(p)
				p.rest()
			}
		})
		_, port, _ := net.SplitHostPort(addr)
		if _, err := dial(t, d, net.JoinHostPort("localhost", port), clientCfg(pki)); err != nil {
			t.Fatal(err)
		}
		if sni := <-got; sni != "localhost" {
			t.Errorf("SNI %q, want localhost", sni)
		}
	})
}

// The client refuses TLS below 1.2 by default.
func TestClientRefusesOldTLS(t *testing.T) {
	pki := newPKI(t)
	d := dialects[0]
	srv := pki.Server.Clone()
	srv.MinVersion, srv.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	addr := fakeServer(t, func(p *fakePeer) {
		d.toUpgrade(p)
		p.send(d.goAhead)
		p.tls(srv)
	})
	_, err := dial(t, d, addr, clientCfg(pki))
	wantErr(t, err, starttls.ErrHandshake, "handshake")
}

// Invariant 5: a stalled peer, at any point, gives a timeout within the
// phase deadline; a huge line or too much data gives a size error; garbage
// where TLS should be gives a handshake error; canceling ctx stops it.
func TestClientHostilePeers(t *testing.T) {
	pki := newPKI(t)
	d := dialects[0]
	cfg := clientCfg(pki)
	cfg.PhaseTimeout = 300 * time.Millisecond
	cfg.MaxPreTLSBytes = 64 << 10
	cases := []struct {
		name   string
		script func(p *fakePeer)
		class  error
		word   string
	}{
		{"silent", func(p *fakePeer) { p.rest() }, starttls.ErrTimeout, "timeout"},
		{"greeting-without-end", func(p *fakePeer) { p.send("220 half a gree"); p.rest() }, starttls.ErrTimeout, "timeout"},
		{"multiline-never-ends", func(p *fakePeer) { p.send("220-one\r\n220-two\r\n"); p.rest() }, starttls.ErrTimeout, "timeout"},
		{"stall-after-starttls", func(p *fakePeer) { d.toUpgrade(p); p.rest() }, starttls.ErrTimeout, "timeout"},
		{"stall-in-handshake", func(p *fakePeer) { d.toUpgrade(p); p.send(d.goAhead); p.rest() }, starttls.ErrTimeout, "timeout"},
		{"huge-line", func(p *fakePeer) { p.send("220 " + strings.Repeat("x", 100<<10)); p.rest() }, starttls.ErrLineTooLong, "too long"},
		{"endless-reply", func(p *fakePeer) {
			p.send(d.greeting)
			p.expect(d.capsCmd)
			for i := 0; i < 200; i++ {
				p.send("250-" + strings.Repeat("y", 1000) + "\r\n")
			}
			p.rest()
		}, starttls.ErrTooMuchData, "too much"},
		{"garbage-tls", func(p *fakePeer) {
			d.toUpgrade(p)
			p.send(d.goAhead)
			p.br.ReadByte() // the ClientHello has started: answer it with garbage
			p.send("\x16\x03\x01\x00\x05hello this is not TLS at all\r\n")
			p.rest()
		}, starttls.ErrHandshake, "handshake"},
		{"plaintext-instead-of-tls", func(p *fakePeer) {
			d.toUpgrade(p)
			p.send(d.goAhead)
			p.line()
			p.send("250 I am still plaintext\r\n")
			p.rest()
		}, starttls.ErrHandshake, "handshake"},
		{"closes-after-go-ahead", func(p *fakePeer) { d.toUpgrade(p); p.send(d.goAhead) }, starttls.ErrHandshake, "handshake"},
		{"closes-mid-dialogue", func(p *fakePeer) { p.send(d.greeting); p.expect(d.capsCmd) }, starttls.ErrClosed, "closed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := fakeServer(t, tc.script)
			start := time.Now()
			_, err := dial(t, d, addr, cfg)
			wantErr(t, err, tc.class, tc.word)
			// Each phase is bounded: well under the 10 s the script allows.
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %v", el)
			}
		})
	}

	t.Run("ctx-canceled", func(t *testing.T) {
		addr := fakeServer(t, func(p *fakePeer) { p.rest() })
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		cfg := clientCfg(pki) // phase timeout 2 s: the cancel must come first
		start := time.Now()
		_, err := starttls.Dial(ctx, d.proto, addr, cfg)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
		if el := time.Since(start); el > time.Second {
			t.Errorf("cancel took %v", el)
		}
	})
}
