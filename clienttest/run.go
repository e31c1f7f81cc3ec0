package clienttest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
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
	"github.com/starttls-go/starttls/internal/proto/registry"
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
	for _, name := range registry.Names() {
		if registry.Lookup(name).ClientTest != nil {
			out = append(out, starttls.Protocol(name))
		}
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
	if info.Implicit || clientTestOf(base) == nil {
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

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func runOne(ctx context.Context, o Options, base starttls.Protocol, p *pki, s Scenario) Result {
	start := time.Now()
	ob := &observation{start: start, handshake: "not started"}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	if s.plan.referral != nil {
		addr, err := referralServer(ctx, ob, s.plan.referral)
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
			if sc.plan.referral != nil {
				addr, err := referralServer(cctx, ob, sc.plan.referral)
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
