// Package proxy puts STARTTLS and implicit TLS in front of a plaintext
// backend (modes terminate and implicit), or lets a plaintext client reach
// a remote server through STARTTLS with full verification (mode
// originate). The upgrade itself is the starttls package's: the proxy adds
// the backend connection, the relay, the removal of STARTTLS from what the
// backend advertises inside TLS, PROXY protocol v2, limits, timeouts,
// certificate reload and a graceful drain.
package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// Mode is what a listener does.
type Mode string

// Modes.
const (
	// Terminate: clients connect in plaintext and upgrade with STARTTLS; the
	// backend speaks plaintext.
	Terminate Mode = "terminate"
	// Implicit: clients speak TLS from the first byte; the backend speaks plaintext.
	Implicit Mode = "implicit"
	// Originate: plaintext clients; the proxy upgrades towards the remote
	// server with STARTTLS and verifies it.
	Originate Mode = "originate"
)

// Timeouts bound each phase of a session. Zero values take the defaults.
type Timeouts struct {
	// PreTLS bounds each client command before TLS (terminate); the whole
	// pre-TLS dialogue is bounded by PreTLS+Handshake together.
	PreTLS time.Duration
	// Handshake bounds the TLS handshake (from the ClientHello on, in
	// terminate mode; from the connection on, in implicit mode).
	Handshake time.Duration
	// Connect bounds connecting to the backend and reading its greeting
	// (in originate mode: the whole upgrade towards the remote server).
	Connect time.Duration
	// Idle closes a relayed session without a byte in either direction for this long.
	Idle time.Duration
}

// Default timeouts.
const (
	DefaultPreTLS    = 30 * time.Second
	DefaultHandshake = 10 * time.Second
	DefaultConnect   = 10 * time.Second
	DefaultIdle      = 5 * time.Minute
	DefaultDrain     = 30 * time.Second
)

func (t Timeouts) orDefault() Timeouts {
	if t.PreTLS <= 0 {
		t.PreTLS = DefaultPreTLS
	}
	if t.Handshake <= 0 {
		t.Handshake = DefaultHandshake
	}
	if t.Connect <= 0 {
		t.Connect = DefaultConnect
	}
	if t.Idle <= 0 {
		t.Idle = DefaultIdle
	}
	return t
}

// Listener configures one listening address.
type Listener struct {
	// Name labels logs and metrics; default "MODE-PROTO-LISTEN".
	Name     string
	Mode     Mode
	Protocol starttls.Protocol // smtp, submission, lmtp, imap, pop3, postgres, ldap (implicit variants imply Mode Implicit)
	Listen   string            // host:port; port 0 picks one (see Server.Addr)
	Backend  string            // host:port of the backend (terminate, implicit) or remote server (originate)

	// Terminate and implicit modes.

	// Certificates serves the certificate; required unless TLSConfig has one.
	Certificates *CertStore
	// TLSConfig, when set, is the base server configuration (cloned);
	// Certificates, when set, supplies GetCertificate. MinVersion defaults to TLS 1.2.
	TLSConfig *tls.Config
	Policy    starttls.ServerPolicy    // Required (default) or Optional
	Injection starttls.InjectionPolicy // what to do with bytes pipelined after STARTTLS (never relayed)
	Hostname  string                   // in the proxy's own greeting; default "localhost"
	// Capabilities are advertised before TLS besides STARTTLS (AUTH-like
	// ones are dropped under Required by the starttls package).
	Capabilities []string
	// ProxyProtocol sends a PROXY protocol v2 header to the backend.
	ProxyProtocol bool

	// Originate mode.

	// ClientTLS verifies the remote server: RootCAs (nil: system roots),
	// ServerName (default: the backend host). Cloned.
	ClientTLS *tls.Config
	// Pins, when set, additionally require that a certificate of the
	// verified chain has one of these SHA-256 SPKI digests (see ParsePin).
	Pins [][32]byte
	// LocalName is the EHLO name used towards the remote server.
	LocalName string

	// MaxConns bounds this listener's sessions (0: unlimited); MaxPerIP
	// bounds the sessions of one client address (0: unlimited).
	MaxConns, MaxPerIP int
	Timeouts           Timeouts
}

// Options apply to the whole server.
type Options struct {
	// Logger gets one line per session and each failure; nil: silence.
	Logger *slog.Logger
	// Metrics is told of sessions, handshakes, failures and bytes; nil: none.
	Metrics Metrics
	// MaxConns bounds all sessions together (0: unlimited).
	MaxConns int
	// Drain bounds how long Serve waits for sessions after its context is
	// canceled before closing them. Default 30 s.
	Drain time.Duration
	// OnEvent is told of starttls events (command injection) on any listener.
	OnEvent func(listener string, remote net.Addr, e starttls.Event)
}

// Server runs listeners. Make one with New.
type Server struct {
	opts      Options
	listeners []*listener
	log       *slog.Logger
	metrics   Metrics

	total    atomic.Int64 // sessions in progress, all listeners
	wg       sync.WaitGroup
	hardCtx  context.Context // canceled when the drain is over
	hardStop context.CancelFunc

	mu    sync.Mutex
	conns map[net.Conn]struct{} // every open client and backend connection
	perIP map[string]int
	done  bool
}

type listener struct {
	cfg    Listener
	app    *registry.ProxyApp
	info   starttls.ProtocolInfo
	ln     net.Listener
	server *tls.Config // terminate, implicit
	client *tls.Config // originate
	active atomic.Int64
}

// New validates the listeners and binds their addresses; nothing is
// accepted until Serve. On error nothing stays bound.
func New(o Options, ls ...Listener) (*Server, error) {
	if len(ls) == 0 {
		return nil, errors.New("proxy: no listener")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Metrics == nil {
		o.Metrics = NopMetrics{}
	}
	if o.Drain <= 0 {
		o.Drain = DefaultDrain
	}
	s := &Server{opts: o, log: o.Logger, metrics: o.Metrics,
		conns: map[net.Conn]struct{}{}, perIP: map[string]int{}}
	s.hardCtx, s.hardStop = context.WithCancel(context.Background())
	for i := range ls {
		l, err := prepare(ls[i])
		if err != nil {
			s.closeListeners()
			return nil, err
		}
		s.listeners = append(s.listeners, l)
	}
	for _, l := range s.listeners {
		ln, err := net.Listen("tcp", l.cfg.Listen)
		if err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("proxy: listener %q: %w", l.cfg.Name, err)
		}
		l.ln = ln
	}
	return s, nil
}

// Validate checks a listener's configuration without binding anything.
func Validate(l Listener) error {
	_, err := prepare(l)
	return err
}

func prepare(c Listener) (*listener, error) {
	fail := func(format string, args ...any) error {
		name := c.Name
		if name == "" {
			name = c.Listen
		}
		return fmt.Errorf("proxy: listener %q: %s", name, fmt.Sprintf(format, args...))
	}
	info, err := starttls.Lookup(c.Protocol)
	if err != nil {
		return nil, fail("proto %q: %v", c.Protocol, err)
	}
	if info.Implicit {
		switch c.Mode {
		case "", Implicit:
			c.Mode = Implicit
		case Originate:
		default:
			return nil, fail("proto %s is implicit TLS: mode must be implicit or originate, not %q", c.Protocol, c.Mode)
		}
	}
	base := info.Base
	a := appFor(base)
	if a == nil {
		return nil, fail("proto %q is not supported by the proxy (supported: %s)", c.Protocol, SupportedProtocols())
	}
	if c.Listen == "" {
		return nil, fail("listen address missing")
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return nil, fail("listen %q: %v", c.Listen, err)
	}
	if c.Backend == "" {
		return nil, fail("backend address missing")
	}
	if _, _, err := net.SplitHostPort(c.Backend); err != nil {
		return nil, fail("backend %q: %v", c.Backend, err)
	}
	if c.MaxConns < 0 || c.MaxPerIP < 0 {
		return nil, fail("negative connection limit")
	}
	if c.Hostname == "" {
		c.Hostname = "localhost"
	}
	if c.Name == "" {
		c.Name = fmt.Sprintf("%s-%s-%s", c.Mode, c.Protocol, c.Listen)
	}
	c.Timeouts = c.Timeouts.orDefault()
	l := &listener{cfg: c, app: a, info: info}
	switch c.Mode {
	case Terminate, Implicit:
		if c.Mode == Terminate && !info.Server {
			return nil, fail("proto %s has no STARTTLS server half", c.Protocol)
		}
		if c.Mode == Terminate && a.NoStartTLS {
			return nil, fail("proto %s: mode terminate is not supported (use implicit)", c.Protocol)
		}
		var tc *tls.Config
		if c.TLSConfig != nil {
			tc = c.TLSConfig.Clone()
		} else {
			tc = &tls.Config{}
		}
		if c.Certificates != nil {
			tc.GetCertificate = c.Certificates.GetCertificate
		}
		if len(tc.Certificates) == 0 && tc.GetCertificate == nil && tc.GetConfigForClient == nil {
			return nil, fail("mode %s needs a certificate and key", c.Mode)
		}
		if tc.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		l.server = tc
	case Originate:
		if !a.Originate {
			return nil, fail("proto %s: mode originate is not supported", c.Protocol)
		}
		var tc *tls.Config
		if c.ClientTLS != nil {
			tc = c.ClientTLS.Clone()
		} else {
			tc = &tls.Config{}
		}
		if tc.ServerName == "" {
			host, _, _ := net.SplitHostPort(c.Backend)
			tc.ServerName = host
		}
		if tc.MinVersion == 0 {
			tc.MinVersion = tls.VersionTLS12
		}
		if len(c.Pins) > 0 {
			tc.VerifyConnection = pinVerifier(c.Pins, tc.VerifyConnection)
		}
		l.client = tc
	default:
		return nil, fail("mode %q: want terminate, implicit or originate", c.Mode)
	}
	return l, nil
}

// Addr returns the bound address of the i-th listener.
func (s *Server) Addr(i int) net.Addr { return s.listeners[i].ln.Addr() }

// Active returns the number of sessions in progress.
func (s *Server) Active() int { return int(s.total.Load()) }

// Serve accepts on every listener until ctx is canceled; then it stops
// accepting, lets the sessions in progress finish for up to Options.Drain,
// closes what is left and returns. It returns early with the error of a
// listener that failed.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, len(s.listeners))
	var accepting sync.WaitGroup
	for _, l := range s.listeners {
		accepting.Add(1)
		go func() {
			defer accepting.Done()
			errc <- s.acceptLoop(l)
		}()
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	s.closeListeners()
	accepting.Wait()
	s.log.Info("proxy draining", "sessions", s.Active(), "bound", s.opts.Drain)
	drained := make(chan struct{})
	go func() { s.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.opts.Drain):
		s.log.Warn("proxy drain bound reached: closing sessions", "sessions", s.Active())
		s.closeAll()
		<-drained
	}
	s.hardStop()
	return err
}

// Close stops accepting and closes every session at once.
func (s *Server) Close() error {
	s.closeListeners()
	s.closeAll()
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		if l.ln != nil {
			_ = l.ln.Close()
		}
	}
}

func (s *Server) closeAll() {
	s.hardStop()
	s.mu.Lock()
	s.done = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
}

// track registers a connection to be closed by closeAll; false when the
// server is already closing (then c is closed).
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done {
		_ = c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) acceptLoop(l *listener) error {
	for backoff := 5 * time.Millisecond; ; {
		conn, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			// EMFILE and friends: back off (bounded) rather than spin.
			s.log.Warn("accept failed", "listener", l.cfg.Name, "err", err)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		s.admit(l, conn)
	}
}

// admit applies the limits and starts the session.
func (s *Server) admit(l *listener, conn net.Conn) {
	ip := remoteIP(conn)
	reason := ""
	s.mu.Lock()
	switch {
	case s.opts.MaxConns > 0 && s.total.Load() >= int64(s.opts.MaxConns):
		reason = ReasonLimitTotal
	case l.cfg.MaxConns > 0 && l.active.Load() >= int64(l.cfg.MaxConns):
		reason = ReasonLimitListener
	case l.cfg.MaxPerIP > 0 && s.perIP[ip] >= l.cfg.MaxPerIP:
		reason = ReasonLimitIP
	default:
		s.perIP[ip]++
		s.total.Add(1)
		l.active.Add(1)
	}
	s.mu.Unlock()
	s.metrics.Connection(l.cfg.Name)
	if reason != "" {
		s.metrics.Failure(l.cfg.Name, reason)
		s.log.Warn("connection refused", "listener", l.cfg.Name, "client", conn.RemoteAddr().String(), "reason", reason)
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.refuse(conn)
		}()
		return
	}
	s.metrics.Active(l.cfg.Name, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer func() {
			s.mu.Lock()
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
			s.total.Add(-1)
			l.active.Add(-1)
			s.metrics.Active(l.cfg.Name, -1)
		}()
		if !s.track(conn) {
			return
		}
		defer s.untrack(conn)
		sess := &session{srv: s, l: l, client: conn, start: time.Now()}
		sess.run()
	}()
}

func remoteIP(c net.Conn) string {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	return host
}
