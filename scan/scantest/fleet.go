// Package scantest starts a fleet of SMTP targets on loopback addresses
// (127.0.0.2 and up, ephemeral ports) that covers every outcome of a
// scan: good servers (package serve), one with an untrusted certificate,
// servers without STARTTLS, refusing, injecting, handshake-breaking,
// stalling (before the greeting and after it), RST-ing and
// garbage-sending ones, and closed ports. Tests of scan and the bench script use it.
package scantest

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/serve"
)

// Kind is a target's behaviour.
type Kind string

// Kinds of targets and the scan outcome each must get.
const (
	Good      Kind = "good"      // a real server (serve.Start): success
	NoTLS     Kind = "notls"     // EHLO without STARTTLS: not-offered
	Refuse    Kind = "refuse"    // STARTTLS -> 454: refused
	Inject    Kind = "inject"    // 220 and a pipelined reply in one write: injection
	Handshake Kind = "handshake" // 220, then plaintext instead of a ServerHello: handshake-error
	Stall     Kind = "stall"     // accepts and never speaks: greeting-timeout
	Mute      Kind = "mute"      // greets, then never answers: timeout
	Untrusted Kind = "untrusted" // a real server whose certificate is from another CA: certificate-error
	RST       Kind = "rst"       // accepts and resets (SO_LINGER 0): closed
	Closed    Kind = "closed"    // nothing listens: connect-refused
	Garbage   Kind = "garbage"   // binary noise instead of a greeting: protocol-error
)

// Kinds lists every kind.
var Kinds = []Kind{Good, NoTLS, Refuse, Inject, Handshake, Stall, Mute, Untrusted, RST, Closed, Garbage}

// StatusGreetingTimeout is scan.StatusGreetingTimeout (scan's tests
// import this package, so it cannot import scan).
const StatusGreetingTimeout starttls.Status = "greeting-timeout"

// Want is the status a scan must give each kind, with the fleet's CA
// trusted (Untrusted's certificate is never).
var Want = map[Kind]starttls.Status{
	Good: starttls.StatusSuccess, NoTLS: starttls.StatusNotOffered, Refuse: starttls.StatusRefused,
	Inject: starttls.StatusInjection, Handshake: starttls.StatusHandshake, Stall: StatusGreetingTimeout,
	Mute: starttls.StatusTimeout, Untrusted: starttls.StatusCertificate,
	RST: starttls.StatusClosed, Closed: starttls.StatusConnectRefused, Garbage: starttls.StatusProtocol,
}

// Target is one member of the fleet.
type Target struct {
	URL  string // smtp://127.0.0.N:PORT
	Kind Kind
}

// Fleet is a running set of targets.
type Fleet struct {
	Targets []Target
	CAFile  string // the good servers' CA
	tc      *tls.Config
	hosts   []string    // the names and addresses in the certificates
	dir     string      // for the untrusted CA
	other   *tls.Config // Untrusted's, made on first use
	ctx     context.Context
	cancel  context.CancelFunc
	servers []*serve.Server
	ls      []net.Listener
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
	delay   time.Duration
}

// Start runs n[k] targets of each kind k, spread round-robin over the
// addresses 127.0.0.2 … 127.0.0.(1+addrs), in dir (for the CA file).
func Start(dir string, n map[Kind]int, addrs int) (*Fleet, error) {
	return StartDelayed(dir, n, addrs, 0)
}

// StartDelayed is Start with a round-trip time of rtt in front of the
// good servers (see delayConn): latency for benchmarks on a kernel
// without tc netem.
func StartDelayed(dir string, n map[Kind]int, addrs int, delay time.Duration) (*Fleet, error) {
	return start(dir, n, addrs, delay, nil)
}

// StartTraced is StartDelayed that also writes to trace the timeline of
// the first conns connections to good servers (when each chunk of the
// client's bytes arrived and each server write left, from the accept):
// the round trips a client takes, for the benchmark's documentation.
func StartTraced(dir string, n map[Kind]int, addrs int, rtt time.Duration, trace io.Writer, conns int) (*Fleet, error) {
	tracer = &traceLog{w: trace, left: conns}
	defer func() { tracer = nil }()
	return start(dir, n, addrs, rtt, nil)
}

// StartNamed is Start with names added to the certificates: tests that
// map made-up host names to the fleet's addresses (MX scans) need them
// for the good servers to verify.
func StartNamed(dir string, n map[Kind]int, addrs int, names ...string) (*Fleet, error) {
	return start(dir, n, addrs, 0, names)
}

func start(dir string, n map[Kind]int, addrs int, delay time.Duration, names []string) (*Fleet, error) {
	if addrs < 1 {
		addrs = 1
	}
	if addrs > 253 {
		addrs = 253
	}
	hosts := append([]string{"localhost", "127.0.0.1"}, names...)
	for i := range addrs {
		hosts = append(hosts, fmt.Sprintf("127.0.0.%d", 2+i))
	}
	tc, caFile, err := serve.ThrowawayTLS(dir, hosts...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Fleet{CAFile: caFile, tc: tc, hosts: hosts, dir: dir, ctx: ctx, cancel: cancel, conns: map[net.Conn]bool{}, delay: delay}
	i := 0
	for _, k := range Kinds {
		for range n[k] {
			host := fmt.Sprintf("127.0.0.%d", 2+i%addrs)
			i++
			addr, err := f.start(k, host, tc)
			if err != nil {
				f.Close()
				return nil, fmt.Errorf("%s target on %s: %w", k, host, err)
			}
			f.Targets = append(f.Targets, Target{URL: "smtp://" + addr, Kind: k})
		}
	}
	return f, nil
}

// Add starts one more target of kind k listening on addr (host:port, port
// 0 for an ephemeral one; a Closed target's port is probed and left
// free). Tests of MX scans use it to put several kinds on one port of
// different loopback addresses.
func (f *Fleet) Add(k Kind, addr string) (Target, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return Target{}, err
	}
	a, err := f.listen(k, host, port, f.tc)
	if err != nil {
		return Target{}, err
	}
	t := Target{URL: "smtp://" + a, Kind: k}
	f.Targets = append(f.Targets, t)
	return t, nil
}

func (f *Fleet) start(k Kind, host string, tc *tls.Config) (string, error) {
	return f.listen(k, host, "0", tc)
}

func (f *Fleet) listen(k Kind, host, port string, tc *tls.Config) (string, error) {
	addr := net.JoinHostPort(host, port)
	switch k {
	case Untrusted:
		if f.other == nil {
			// The same names, so that only the trust fails.
			d := filepath.Join(f.dir, "untrusted")
			if err := os.MkdirAll(d, 0o755); err != nil {
				return "", err
			}
			other, _, err := serve.ThrowawayTLS(d, f.hosts...)
			if err != nil {
				return "", err
			}
			f.other = other
		}
		tc = f.other
		fallthrough
	case Good:
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return "", err
		}
		if f.delay > 0 || tracer != nil {
			l = delayListener{l, f.delay, tracer}
		}
		s, err := serve.Start(f.ctx, serve.Options{Protocol: starttls.SMTP, Listener: l, TLSConfig: tc, IdleTimeout: 30 * time.Second})
		if err != nil {
			l.Close()
			return "", err
		}
		f.servers = append(f.servers, s)
		return s.Addr.String(), nil
	case Closed:
		l, err := net.Listen("tcp", addr)
		if err != nil {
			return "", err
		}
		a := l.Addr().String()
		l.Close()
		return a, nil
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	f.ls = append(f.ls, l)
	f.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			f.track(c, true)
			f.wg.Go(func() {
				defer f.track(c, false)
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(time.Minute))
				fake(k, c)
			})
		}
	})
	return l.Addr().String(), nil
}

func (f *Fleet) track(c net.Conn, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if on {
		f.conns[c] = true
	} else {
		delete(f.conns, c)
	}
}

// fake plays one misbehaving SMTP server.
func fake(k Kind, c net.Conn) {
	switch k {
	case Stall:
		_, _ = io.Copy(io.Discard, c) // until the client gives up
		return
	case RST:
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		return
	case Garbage:
		_, _ = c.Write([]byte("\x16\x03\x01\x00\xffGARBAGE \x00\x01\x02 not a greeting\r\n"))
		_, _ = io.Copy(io.Discard, c)
		return
	}
	br := bufio.NewReader(c)
	say := func(s string) bool { _, err := io.WriteString(c, s); return err == nil }
	if !say("220 fake.test ESMTP\r\n") {
		return
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case k == Mute:
			// Reads on without answering, until the client gives up.
		case strings.HasPrefix(cmd, "EHLO"):
			if k == NoTLS {
				say("250-fake.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
			} else {
				say("250-fake.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n")
			}
		case cmd == "STARTTLS":
			switch k {
			case Refuse:
				say("454 4.7.0 TLS not available due to local problem\r\n")
			case Inject:
				say("220 2.0.0 Ready to start TLS\r\n250 injected reply\r\n")
				_, _ = io.Copy(io.Discard, c)
				return
			case Handshake:
				say("220 2.0.0 Ready to start TLS\r\n")
				buf := make([]byte, 512)
				_, _ = br.Read(buf) // the ClientHello
				say("HTTP/1.0 400 Bad Request\r\n\r\nthis is not TLS at all\r\n")
				return
			default:
				say("502 5.5.1 not implemented\r\n")
			}
		case cmd == "QUIT":
			say("221 2.0.0 bye\r\n")
			return
		default:
			say("502 5.5.2 unknown command\r\n")
		}
	}
}

// Close stops every server and fake and waits for them.
func (f *Fleet) Close() {
	f.cancel()
	for _, l := range f.ls {
		l.Close()
	}
	f.mu.Lock()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	for _, s := range f.servers {
		_ = s.Close()
	}
	f.wg.Wait()
}

// WriteList writes the targets' URLs, one a line, to dir/targets.txt.
func (f *Fleet) WriteList(dir string) (string, error) {
	var b strings.Builder
	for _, t := range f.Targets {
		b.WriteString(t.URL + "\n")
	}
	p := filepath.Join(dir, "targets.txt")
	return p, os.WriteFile(p, []byte(b.String()), 0o644)
}

// WantOf maps each target URL to the status it must get.
func (f *Fleet) WantOf() map[string]starttls.Status {
	m := make(map[string]starttls.Status, len(f.Targets))
	for _, t := range f.Targets {
		m[t.URL] = Want[t.Kind]
	}
	return m
}
