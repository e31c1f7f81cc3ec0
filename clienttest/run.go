package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/serve"
)

// Options configure a run.
type Options struct {
	Protocol starttls.Protocol
	// Scenarios to run by name; empty runs all for the protocol.
	Scenarios []string
	// Command is the client to run, with {host}, {port}, {addr} and {ca}
	// replaced in each argument. Either Command or Client is needed.
	Command []string
	// Client is an in-process client (our own library, Go's net/smtp ...):
	// called with the server address and the CA file.
	Client func(ctx context.Context, addr, caFile string) error
	// Timeout bounds each scenario (the client is killed at its end). Default 15 s.
	Timeout time.Duration
	// Dir holds the CA file and the mail of scenario servers; default a temporary directory.
	Dir string
}

// Line is one command the client sent.
type Line struct {
	AtMS float64 `json:"at_ms"`
	TLS  bool    `json:"tls"`
	Text string  `json:"text"`
	// Referred marks a line sent to the server a referral pointed to.
	Referred bool `json:"referred,omitempty"`
}

// Result is one scenario's outcome.
type Result struct {
	Scenario   Scenario `json:"scenario"`
	Verdict    Verdict  `json:"verdict"`
	Evidence   string   `json:"evidence"`
	Transcript []Line   `json:"transcript"`
	Handshake  string   `json:"handshake"` // "completed", "failed: ...", "not started"
	ClientExit string   `json:"client_exit,omitempty"`
	ClientOut  string   `json:"client_output,omitempty"`
	DurationMS float64  `json:"duration_ms"`
}

// Report is a whole run against one client.
type Report struct {
	Schema   string            `json:"schema"`
	Protocol starttls.Protocol `json:"protocol"`
	Client   string            `json:"client"`
	// Version is the client's version, when the caller knows it.
	Version string `json:"client_version,omitempty"`
	// Counts is true only when the control scenario passed: otherwise the
	// client never worked with an honest server and nothing else means much.
	Counts  bool     `json:"counts"`
	Results []Result `json:"results"`
}

// Failed lists the scenarios that failed.
func (r *Report) Failed() []string {
	var out []string
	for _, res := range r.Results {
		if res.Verdict == Fail {
			out = append(out, res.Scenario.Name)
		}
	}
	return out
}

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

// Run plays the scenarios against the client, one after the other.
func Run(ctx context.Context, o Options) (*Report, error) {
	base, err := baseOf(o.Protocol)
	if err != nil {
		return nil, err
	}
	if len(o.Command) == 0 && o.Client == nil {
		return nil, errors.New("clienttest: no client to test")
	}
	if o.Timeout <= 0 {
		o.Timeout = 15 * time.Second
	}
	if o.Dir == "" {
		dir, err := os.MkdirTemp("", "starttls-clienttest-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.Dir = dir
	}
	p, err := newPKI(o.Dir)
	if err != nil {
		return nil, err
	}
	scenarios := Scenarios(base)
	if len(o.Scenarios) > 0 {
		var picked []Scenario
		for _, name := range o.Scenarios {
			found := false
			for _, s := range scenarios {
				if s.Name == name {
					picked, found = append(picked, s), true
				}
			}
			if !found {
				return nil, fmt.Errorf("no scenario %q for %s", name, base)
			}
		}
		scenarios = picked
	}
	rep := &Report{Schema: "starttls.clienttest/v1", Protocol: o.Protocol, Client: clientName(o)}
	for _, s := range scenarios {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		res := runOne(ctx, o, base, p, s)
		rep.Results = append(rep.Results, res)
		if s.kind == kindControl {
			rep.Counts = res.Verdict == Pass
		}
	}
	return rep, nil
}

// Protocols lists the protocols clienttest has scenario servers for,
// sorted; submission and lmtp are played as smtp.
func Protocols() []starttls.Protocol {
	out := []starttls.Protocol{starttls.Submission, starttls.LMTP}
	for p := range personalities {
		out = append(out, p)
	}
	for p := range dialects {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

func spoken() string {
	var names []string
	for _, p := range Protocols() {
		names = append(names, string(p))
	}
	return strings.Join(names, ", ")
}

// baseOf maps a protocol to the one whose scenario server plays it, or
// fails for a protocol without scenarios (implicit TLS has no upgrade to attack).
func baseOf(proto starttls.Protocol) (starttls.Protocol, error) {
	info, err := starttls.Lookup(proto)
	if err != nil {
		return "", err
	}
	base := info.Base
	if base == starttls.Submission || base == starttls.LMTP {
		base = starttls.SMTP
	}
	if info.Implicit || personalityOf(base) == nil {
		return "", fmt.Errorf("clienttest speaks %s, not %s", spoken(), proto)
	}
	return base, nil
}

func clientName(o Options) string {
	if len(o.Command) > 0 {
		return strings.Join(o.Command, " ")
	}
	return "in-process client"
}

// observation is what the scenario server saw.
type observation struct {
	mu           sync.Mutex
	start        time.Time
	lines        []Line
	connected    bool
	handshake    string
	firstTLSSent time.Time // when the server first wrote inside TLS
}

func (ob *observation) add(tlsOn bool, text string) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.lines = append(ob.lines, Line{AtMS: ms(time.Since(ob.start)), TLS: tlsOn, Text: text})
}

func (ob *observation) addReferred(text string) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.lines = append(ob.lines, Line{AtMS: ms(time.Since(ob.start)), Text: text, Referred: true})
}

// referralServer listens for a client that follows a referral: a plaintext
// IMAP server offering AUTH=PLAIN and no STARTTLS, recording what it is
// sent, until ctx ends. It returns the address to refer to.
func referralServer(ctx context.Context, ob *observation) (string, error) {
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
				pers := personalities[starttls.IMAP]
				br := bufio.NewReader(conn)
				_, _ = io.WriteString(conn, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] referred server ready\r\n")
				for i := 0; i < 50; i++ {
					_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					raw, err := br.ReadString('\n')
					if err != nil {
						return
					}
					line := strings.TrimRight(raw, "\r\n")
					ob.addReferred(line)
					tag, verb, _ := splitCommand(pers, line)
					reply := tag + " NO not here\r\n"
					switch verb {
					case "CAPABILITY":
						reply = "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n"
					case "AUTHENTICATE":
						reply = "+ \r\n"
					case "LOGOUT":
						_, _ = io.WriteString(conn, "* BYE\r\n"+tag+" OK bye\r\n")
						return
					}
					if _, err := io.WriteString(conn, reply); err != nil {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String(), nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runOne(ctx context.Context, o Options, base starttls.Protocol, p *pki, s Scenario) Result {
	start := time.Now()
	ob := &observation{start: start, handshake: "not started"}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if s.plan.referral {
		addr, err := referralServer(ctx, ob)
		if err != nil {
			return Result{Scenario: s, Verdict: Inconclusive, Evidence: err.Error()}
		}
		s.plan.greeting = strings.ReplaceAll(s.plan.greeting, "{referral}", addr)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return Result{Scenario: s, Verdict: Inconclusive, Evidence: err.Error()}
	}
	defer l.Close()
	served := make(chan struct{})
	go func() {
		defer close(served)
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		ob.mu.Lock()
		ob.connected = true
		ob.mu.Unlock()
		stop := context.AfterFunc(ctx, func() { conn.Close() })
		defer stop()
		play(ctx, conn, base, p, s, ob, o.Dir)
	}()

	clientDone := make(chan struct{})
	var exit, out string
	go func() {
		defer close(clientDone)
		exit, out = runClient(ctx, o, l.Addr().String(), p.caFile)
	}()
	// The scenario ends when the server side is done (the client hung up
	// or the deadline passed); the client then gets a moment to exit.
	select {
	case <-served:
	case <-clientDone:
		// A client that exits without connecting ends the scenario too.
		select {
		case <-served:
		case <-time.After(500 * time.Millisecond):
			l.Close()
			ob.mu.Lock()
			connected := ob.connected
			ob.mu.Unlock()
			if connected {
				<-served
			}
		}
	case <-ctx.Done():
	}
	select {
	case <-clientDone:
	case <-time.After(2 * time.Second):
		cancel()
		<-clientDone
	}
	l.Close()
	cancel()
	<-served

	ob.mu.Lock()
	defer ob.mu.Unlock()
	res := Result{Scenario: s, Transcript: ob.lines, Handshake: ob.handshake, ClientExit: exit, ClientOut: out,
		DurationMS: ms(time.Since(start))}
	res.Verdict, res.Evidence = judge(base, s, ob)
	if s.kind == kindSpoof && res.Verdict == Pass {
		res.Verdict, res.Evidence = judgeScreen(out + "\n" + exit)
	}
	return res
}

// runClient runs the client to completion or until ctx ends.
func runClient(ctx context.Context, o Options, addr, caFile string) (exit, output string) {
	host, port, _ := net.SplitHostPort(addr)
	if o.Client != nil {
		if err := o.Client(ctx, addr, caFile); err != nil {
			return "error: " + err.Error(), ""
		}
		return "ok", ""
	}
	r := strings.NewReplacer("{host}", host, "{port}", port, "{addr}", addr, "{ca}", caFile)
	args := make([]string, len(o.Command))
	for i, a := range o.Command {
		args[i] = r.Replace(a)
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = o.Dir
	cmd.Stdin = nil
	var buf limitedBuffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	// Its own process group, so that a shell's children die with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	switch {
	case err == nil:
		exit = "0"
	case ctx.Err() != nil:
		exit = "killed at the deadline"
	default:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			exit = strconv.Itoa(ee.ExitCode())
		} else {
			exit = err.Error()
		}
	}
	return exit, buf.String()
}

// limitedBuffer keeps the first 16 KiB of a client's output.
type limitedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if room := 16<<10 - l.b.Len(); room > 0 {
		l.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// play is the scenario server's side of one connection.
func play(ctx context.Context, conn net.Conn, base starttls.Protocol, p *pki, s Scenario, ob *observation, dir string) {
	if dialects[base] != nil {
		playDialect(ctx, conn, base, p, s, ob)
		return
	}
	pers := personalities[base]
	br := bufio.NewReaderSize(conn, 16<<10)
	write := func(text string) bool {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := io.WriteString(conn, text)
		return err == nil
	}
	extra := s.plan.extraCaps
	if s.plan.mechanisms {
		extra = append(slices.Clone(extra), pers.mechanisms...)
	}
	greeting := pers.greeting
	if pers.capsInGreeting {
		greeting = pers.caps("", !s.plan.noOffer, extra)
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
		tag, verb, arg := splitCommand(pers, line)
		switch {
		case containsFold(pers.capsVerbs, verb):
			if s.plan.capsFail != "" && verb == "EHLO" {
				if !write(s.plan.capsFail) {
					return
				}
				continue
			}
			if verb == "HELO" {
				if !write("250 mail.test\r\n") {
					return
				}
				continue
			}
			reply := pers.caps(tag, !s.plan.noOffer, extra)
			if s.plan.earlyOK && pers.tagged {
				reply += nextTag(tag) + " OK Begin TLS negotiation now\r\n"
			}
			if !write(reply) {
				return
			}
		case verb == pers.upgradeVerb && (base != starttls.FTP || strings.EqualFold(arg, "TLS") || strings.EqualFold(arg, "SSL")):
			if s.plan.noOffer && s.plan.refuse == "" {
				// Not offered: answer as a server without TLS would.
				if !write(strings.ReplaceAll(refusalFor(pers), "{tag}", tag)) {
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
				if !write(strings.ReplaceAll(pers.refusals[s.plan.refuse], "{tag}", tag)) {
					return
				}
				continue
			}
			if !s.plan.earlyOK {
				goAhead := pers.goAhead(tag)
				if s.plan.inject {
					inj := pers.inject(tag)
					if s.plan.partial {
						inj = strings.TrimSuffix(strings.SplitAfter(inj, "\r\n")[0], "\r\n")
					}
					goAhead += inj
				}
				if !write(goAhead) {
					return
				}
			}
			upgraded(ctx, conn, br, base, p, s, ob, dir)
			return
		case containsFold(pers.quit, verb):
			write(pers.ok(tag, verb))
			if pers.farewell != nil {
				write(pers.farewell(tag))
			}
			return
		default:
			if !write(pers.ok(tag, verb)) {
				return
			}
		}
	}
}

// refusalFor is the answer of a server that has no TLS at all.
func refusalFor(pers *personality) string {
	for _, k := range []string{"502", "BAD", "-ERR", "NO", "500"} {
		if r, ok := pers.refusals[k]; ok {
			return r
		}
	}
	return "500 unknown\r\n"
}

// upgraded runs TLS with the scenario's certificate, then a real
// application inside it, recording what the client sends.
func upgraded(ctx context.Context, conn net.Conn, br *bufio.Reader, base starttls.Protocol, p *pki, s Scenario, ob *observation, dir string) {
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
	if pers := personalities[base]; pers.capsAfterTLS != "" {
		if s.kind == kindTamper {
			// A client that trusted the pre-TLS list authenticates before
			// the list re-sent inside TLS has come.
			rc.delayFirst = 700 * time.Millisecond
		}
		// The application (serve) does not re-send them itself.
		if _, err := io.WriteString(rc, pers.capsAfterTLS); err != nil {
			return
		}
	}
	var app net.Conn = rc
	if wrap := personalities[base].wrap; wrap != nil {
		app = wrap(rc)
	}
	sc := &starttls.Conn{Conn: app, Protocol: base, TLS: tc}
	serve.ServeConn(ctx, sc, serve.Options{Protocol: base, TLSConfig: cfg, MailDir: dir, IdleTimeout: 5 * time.Second, Hostname: "mail.test"})
}

// prefixConn reads bytes already buffered before the connection's own.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// recordingConn notes every line the client sends inside TLS as it
// arrives (a reader goroutine stamps it, whatever the application is
// doing), and the time of the server's first answer, delayed by delayFirst.
type recordingConn struct {
	net.Conn
	ob         *observation
	delayFirst time.Duration
	wrote      bool

	once sync.Once
	mu   sync.Mutex
	cond *sync.Cond
	buf  bytes.Buffer
	err  error
}

// maxQueued bounds what the reader goroutine holds for the application.
const maxQueued = 1 << 20

func (c *recordingConn) start() {
	c.cond = sync.NewCond(&c.mu)
	go func() {
		var partial []byte
		b := make([]byte, 16<<10)
		for {
			n, err := c.Conn.Read(b)
			partial = append(partial, b[:n]...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				c.ob.add(true, strings.TrimRight(string(partial[:i]), "\r"))
				partial = partial[i+1:]
			}
			if len(partial) > 64<<10 {
				partial = partial[:0]
			}
			c.mu.Lock()
			if c.buf.Len() < maxQueued {
				c.buf.Write(b[:n])
			}
			if err != nil {
				c.err = err
			}
			c.cond.Broadcast()
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

func (c *recordingConn) Read(p []byte) (int, error) {
	c.once.Do(c.start)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.buf.Len() == 0 && c.err == nil {
		c.cond.Wait()
	}
	if c.buf.Len() > 0 {
		return c.buf.Read(p)
	}
	return 0, c.err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.once.Do(c.start)
	if !c.wrote {
		c.wrote = true
		time.Sleep(c.delayFirst)
		c.ob.mu.Lock()
		c.ob.firstTLSSent = time.Now()
		c.ob.mu.Unlock()
	}
	return c.Conn.Write(p)
}

// splitCommand returns the tag (IMAP), the upper-cased verb and the rest.
func splitCommand(pers *personality, line string) (tag, verb, arg string) {
	rest := line
	if pers.tagged {
		tag, rest, _ = strings.Cut(line, " ")
	}
	verb, arg, _ = strings.Cut(rest, " ")
	return tag, strings.ToUpper(verb), arg
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

// Serve plays one scenario to every client that connects to l, for
// clients driven by hand (a GUI mail client), until ctx ends. The CA file
// to give the client is written into dir (ca.pem).
func Serve(ctx context.Context, l net.Listener, proto starttls.Protocol, scenario, dir string, report func(Result)) error {
	base, err := baseOf(proto)
	if err != nil {
		return err
	}
	var s *Scenario
	for _, sc := range Scenarios(base) {
		if sc.Name == scenario {
			s = &sc
		}
	}
	if s == nil {
		return fmt.Errorf("no scenario %q for %s", scenario, base)
	}
	p, err := newPKI(dir)
	if err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go func() {
			defer conn.Close()
			start := time.Now()
			ob := &observation{start: start, handshake: "not started", connected: true}
			cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			defer cancel()
			sc := *s
			if sc.plan.referral {
				addr, err := referralServer(cctx, ob)
				if err != nil {
					return
				}
				sc.plan.greeting = strings.ReplaceAll(sc.plan.greeting, "{referral}", addr)
			}
			play(cctx, conn, base, p, sc, ob, dir)
			ob.mu.Lock()
			res := Result{Scenario: sc, Transcript: ob.lines, Handshake: ob.handshake, DurationMS: ms(time.Since(start))}
			res.Verdict, res.Evidence = judge(base, sc, ob)
			if sc.kind == kindSpoof && res.Verdict == Pass {
				res.Verdict, res.Evidence = Inconclusive, res.Evidence+"; what the client showed its user is not seen in --listen mode"
			}
			ob.mu.Unlock()
			report(res)
		}()
	}
}
