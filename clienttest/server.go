package clienttest

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	_ "github.com/starttls-go/starttls/internal/proto/all" // every protocol's ClientTest
	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/serve"
)

// pki is the run's certificates: a CA the client trusts and one server
// configuration per certificate kind.
type pki struct {
	caFile string
	byKind map[certKind]*tls.Config
}

func newPKI(dir string) (*pki, error) {
	ca, err := certs.NewCA("starttls clienttest CA")
	if err != nil {
		return nil, err
	}
	caFile, err := ca.WriteFiles(dir)
	if err != nil {
		return nil, err
	}
	hosts := []string{"localhost", "127.0.0.1", "mail.test"}
	leaf := func(c *certs.CA, o certs.LeafOptions) (*tls.Config, error) {
		l, err := c.Issue(o)
		if err != nil {
			return nil, err
		}
		return &tls.Config{Certificates: []tls.Certificate{l.TLS}}, nil
	}
	p := &pki{caFile: caFile, byKind: map[certKind]*tls.Config{}}
	if p.byKind[certGood], err = leaf(ca, certs.LeafOptions{Hosts: hosts}); err != nil {
		return nil, err
	}
	if p.byKind[certWrongName], err = leaf(ca, certs.LeafOptions{Hosts: []string{"wrong.test"}}); err != nil {
		return nil, err
	}
	if p.byKind[certExpired], err = leaf(ca, certs.LeafOptions{Hosts: hosts,
		NotBefore: time.Now().Add(-60 * 24 * time.Hour), NotAfter: time.Now().Add(-30 * 24 * time.Hour)}); err != nil {
		return nil, err
	}
	other, err := certs.NewCA("an unknown CA")
	if err != nil {
		return nil, err
	}
	if p.byKind[certUnknownCA], err = leaf(other, certs.LeafOptions{Hosts: hosts}); err != nil {
		return nil, err
	}
	self, err := certs.SelfSigned(hosts...)
	if err != nil {
		return nil, err
	}
	p.byKind[certSelfSigned] = &tls.Config{Certificates: []tls.Certificate{self.TLS}}
	return p, nil
}

// referralServer listens for a client that follows a referral: ref's
// plaintext server, offering authentication and no STARTTLS, recording
// what it is sent, until ctx ends. It returns the address to refer to.
func referralServer(ctx context.Context, ob *observation, ref *registry.CTReferral) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	context.AfterFunc(ctx, func() { l.Close() })
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				stop := context.AfterFunc(ctx, func() { conn.Close() })
				defer stop()
				br := bufio.NewReader(conn)
				_, _ = io.WriteString(conn, ref.Greeting)
				for i := 0; i < 50; i++ {
					_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					raw, err := br.ReadString('\n')
					if err != nil {
						return
					}
					line := strings.TrimRight(raw, "\r\n")
					ob.addReferred(line)
					reply, last := ref.Answer(line)
					if _, err := io.WriteString(conn, reply); err != nil || last {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), nil
}

// play is the scenario server's side of one connection.
func play(ctx context.Context, conn net.Conn, base starttls.Protocol, p *pki, s Scenario, ob *observation, dir string) {
	ct := clientTestOf(base)
	if ct.Dialect != nil {
		playDialect(ctx, conn, ct.Dialect, p, s, ob)
		return
	}
	pers := ct.Line
	br := bufio.NewReaderSize(conn, 16<<10)
	write := func(text string) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := io.WriteString(conn, text)
		return err == nil
	}
	extra := s.plan.extraCaps
	if s.plan.mechanisms {
		extra = append(slices.Clone(extra), pers.Mechanisms...)
	}
	greeting := pers.Greeting
	if pers.CapsInGreeting {
		greeting = pers.Caps("", "", !s.plan.noOffer, extra)
	}
	if s.plan.greeting != "" {
		greeting = s.plan.greeting
	}
	if !write(greeting) || strings.HasPrefix(greeting, "* BYE") {
		return
	}
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		raw, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line := strings.TrimRight(raw, "\r\n")
		ob.add(false, line)
		tag, verb, arg := registry.CTSplit(pers.Tagged, line)
		answer, replaced := s.plan.answers[verb]
		switch {
		case replaced:
			if !write(answer) {
				return
			}
		case containsFold(pers.CapsVerbs, verb):
			reply := pers.Caps(tag, verb, !s.plan.noOffer, extra)
			if s.plan.earlyOK && pers.Tagged {
				reply += pers.GoAhead(registry.CTNextTag(tag))
			}
			if !write(reply) {
				return
			}
		case verb == pers.UpgradeVerb && (len(pers.UpgradeArgs) == 0 || containsFold(pers.UpgradeArgs, arg)):
			if s.plan.noOffer && s.plan.refuse == "" {
				// Not offered: answer as a server without TLS would.
				if !write(strings.ReplaceAll(pers.Refusals[pers.NoTLS], "{tag}", tag)) {
					return
				}
				continue
			}
			if s.plan.refuseText != "" {
				if !write(strings.ReplaceAll(s.plan.refuseText, "{tag}", tag)) {
					return
				}
				continue
			}
			if s.plan.refuse != "" {
				if !write(strings.ReplaceAll(pers.Refusals[s.plan.refuse], "{tag}", tag)) {
					return
				}
				continue
			}
			if !s.plan.earlyOK {
				goAhead := pers.GoAhead(tag)
				if s.plan.inject {
					inj := pers.Inject(tag)
					if s.plan.partial {
						inj = strings.TrimSuffix(strings.SplitAfter(inj, "\r\n")[0], "\r\n")
					}
					goAhead += inj
				}
				if !write(goAhead) {
					return
				}
			}
			upgraded(ctx, conn, br, base, pers, p, s, ob, dir)
			return
		case containsFold(pers.Quit, verb):
			write(pers.OK(tag, verb))
			if pers.Farewell != nil {
				write(pers.Farewell(tag))
			}
			return
		default:
			if !write(pers.OK(tag, verb)) {
				return
			}
		}
	}
}

// upgraded runs TLS with the scenario's certificate, then a real
// application inside it, recording what the client sends.
func upgraded(ctx context.Context, conn net.Conn, br *bufio.Reader, base starttls.Protocol, pers *registry.CTLine, p *pki, s Scenario, ob *observation, dir string) {
	// Bytes the client sent before seeing the go-ahead (the start of a
	// ClientHello, or pipelined commands) are fed to TLS as they are.
	tc := serverTLS(ctx, conn, br, p, s, ob)
	if tc == nil {
		return
	}
	cfg := p.byKind[s.plan.cert]
	if cfg == nil {
		cfg = p.byKind[certGood]
	}
	rc := &recordingConn{Conn: tc, ob: ob}
	if s.kind == kindInject || s.kind == kindEarlyOK {
		// The first answer inside TLS comes late on purpose: a client that
		// acted on injected plaintext sends its next command before it.
		rc.delayFirst = 700 * time.Millisecond
	}
	if pers.CapsAfterTLS != "" {
		if s.kind == kindTamper {
			// A client that trusted the pre-TLS list authenticates before
			// the list re-sent inside TLS has come.
			rc.delayFirst = 700 * time.Millisecond
		}
		// The application (serve) does not re-send them itself.
		if _, err := io.WriteString(rc, pers.CapsAfterTLS); err != nil {
			return
		}
	}
	var app net.Conn = rc
	if pers.Wrap != nil {
		app = pers.Wrap(rc)
	}
	sc := &starttls.Conn{Conn: app, Protocol: base, TLS: tc}
	serve.ServeConn(ctx, sc, serve.Options{Protocol: base, TLSConfig: cfg, MailDir: dir, IdleTimeout: 5 * time.Second, Hostname: "mail.test"})
}

// clientTestOf is how clienttest plays base (nil: it does not).
func clientTestOf(base starttls.Protocol) *registry.ClientTest {
	if p := registry.Lookup(string(base)); p != nil {
		return p.ClientTest
	}
	return nil
}

// splitCommand returns the tag (IMAP), the upper-cased verb and the rest
// of a line as ct reads it.
func splitCommand(ct *registry.ClientTest, line string) (tag, verb, arg string) {
	return registry.CTSplit(ct.Line != nil && ct.Line.Tagged, line)
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}
