package starttls

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

// ServerPolicy says what a server allows before TLS.
type ServerPolicy int

// Policies. Required is the default: only the dialogue (greeting,
// capabilities, STARTTLS, no-ops, quit) is possible before TLS, and no
// authentication mechanism is advertised.
const (
	Required ServerPolicy = iota
	// Optional advertises STARTTLS but lets the client go on in plaintext:
	// the first command that is not part of the dialogue ends it and the
	// session is handed to the application unencrypted.
	Optional
)

// InjectionPolicy says what a server does with bytes pipelined after the
// client's STARTTLS command. They are never executed either way.
type InjectionPolicy int

// Injection policies; Close is the default.
const (
	// Close ends the connection without answering.
	Close InjectionPolicy = iota
	// Discard drops the bytes, records an Event and goes on with TLS.
	Discard
)

// ServerConfig configures the server side of the upgrade.
type ServerConfig struct {
	// TLSConfig must hold a certificate. MinVersion defaults to TLS 1.2.
	TLSConfig *tls.Config
	Policy    ServerPolicy
	Injection InjectionPolicy
	// Hostname appears in greetings. Default "localhost".
	Hostname string
	// Capabilities are extra capabilities advertised before TLS (e.g.
	// "SIZE 10240000", "PIPELINING"). Under Required, AUTH entries are dropped.
	Capabilities []string
	// PhaseTimeout bounds each command wait and the handshake. Default 15 s.
	PhaseTimeout time.Duration
	// MaxLineLength and MaxPreTLSBytes bound what the client may send before TLS.
	MaxLineLength  int
	MaxPreTLSBytes int
	// MaxCommands bounds the number of pre-TLS commands. Default 50.
	MaxCommands int
	// OnEvent, when set, is told of every Event as it happens (also for
	// connections closed because of it).
	OnEvent func(remote net.Addr, e Event)
	Logger  *slog.Logger
}

func (c *ServerConfig) orDefault() *ServerConfig {
	var out ServerConfig
	if c != nil {
		out = *c
	}
	if out.Hostname == "" {
		out.Hostname = "localhost"
	}
	defaultLimits(&out.PhaseTimeout, &out.MaxLineLength, &out.MaxPreTLSBytes)
	if out.MaxCommands <= 0 {
		out.MaxCommands = 50
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

// advertised filters the extra capabilities by policy (invariant 4).
func (c *ServerConfig) advertised() []string {
	var out []string
	for _, e := range c.Capabilities {
		kw, _, _ := strings.Cut(strings.Fields(e + " ")[0], "=")
		if c.Policy == Required && (strings.EqualFold(kw, "AUTH") || strings.EqualFold(kw, "SASL") ||
			strings.EqualFold(kw, "USER") || strings.EqualFold(kw, "AUTHINFO")) {
			continue
		}
		out = append(out, e)
	}
	return out
}

// serverSession is the state of one server dialogue.
type serverSession struct {
	ctx   context.Context
	cfg   *ServerConfig
	sp    *spec
	raw   net.Conn
	out   net.Conn // where replies go: raw, then the TLS connection
	r     *wire.Reader
	dl    *wire.Deadline
	c     *Conn
	start time.Time
	phase Phase
	state any // the server half's own state
	dcfg  *dialog.ServerConfig
}

func (s *serverSession) peer() string { return s.raw.RemoteAddr().String() }

// The methods below make a serverSession the dialog.Server the protocol
// folders' server halves drive.
var _ dialog.Server = (*serverSession)(nil)

func (s *serverSession) Fail(cond error, reply string) error {
	return &ProtocolError{Protocol: s.sp.name, Peer: s.peer(), Phase: s.phase, Reply: reply, Err: cond}
}

func (s *serverSession) IOErr(err error) error {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return err
	}
	return s.FailIO(err, "")
}

// FailIO is the session's error for an I/O error, reply as evidence.
func (s *serverSession) FailIO(err error, reply string) error {
	return s.Fail(classifyIO(s.ctx, err), reply)
}

func (s *serverSession) Record(sent bool, text string) {
	s.c.Transcript = append(s.c.Transcript, Exchange{At: time.Since(s.start), Sent: sent, TLS: s.c.TLS != nil, Text: text})
}

// Send writes reply lines, each with CRLF, in one write.
func (s *serverSession) Send(lines ...string) error {
	var b strings.Builder
	for _, l := range lines {
		s.Record(true, l)
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	return s.SendRaw([]byte(b.String()), "")
}

// SendRaw writes bytes of a binary protocol; desc, if any, goes into the transcript.
func (s *serverSession) SendRaw(b []byte, desc string) error {
	if desc != "" {
		s.Record(true, desc)
	}
	s.dl.Phase()
	if _, err := s.out.Write(b); err != nil {
		return s.IOErr(err)
	}
	return nil
}

func (s *serverSession) ReadLine() (string, error) {
	s.dl.Phase()
	l, err := s.r.ReadLine()
	if err != nil {
		return "", s.IOErr(err)
	}
	return l, nil
}

// ReadFull reads exactly len(p) bytes of a binary protocol message.
func (s *serverSession) ReadFull(p []byte) error {
	s.dl.Phase()
	if err := s.r.ReadFull(p); err != nil {
		return s.IOErr(err)
	}
	return nil
}

func (s *serverSession) Reader() *wire.Reader      { return s.r }
func (s *serverSession) ResetDeadline()            { s.dl.Phase() }
func (s *serverSession) SetPhase(p string)         { s.phase = Phase(p) }
func (s *serverSession) SetClientName(name string) { s.c.ClientName = name }
func (s *serverSession) SetGreeting(g string)      { s.c.Greeting = g }
func (s *serverSession) SetCapabilitiesBefore(c dialog.Capabilities) {
	s.c.CapabilitiesBefore = Capabilities(c)
}
func (s *serverSession) SetPending(b []byte)                  { s.c.pending = b }
func (s *serverSession) WrapRaw(wrap func(net.Conn) net.Conn) { s.raw = wrap(s.raw) }
func (s *serverSession) State() any                           { return s.state }
func (s *serverSession) SetState(v any)                       { s.state = v }

// Config is made once per session: halves ask for it on every command.
func (s *serverSession) Config() dialog.ServerConfig {
	if s.dcfg == nil {
		s.dcfg = &dialog.ServerConfig{Hostname: s.cfg.Hostname, Optional: s.cfg.Policy == Optional,
			Capabilities: s.cfg.Capabilities, Advertised: s.cfg.advertised(), MaxCommands: s.cfg.MaxCommands,
			MaxLineLength: s.cfg.MaxLineLength, MaxPreTLSBytes: s.cfg.MaxPreTLSBytes, Start: s.start}
	}
	return *s.dcfg
}

func (s *serverSession) event(e Event) {
	s.c.Events = append(s.c.Events, e)
	if s.cfg.OnEvent != nil {
		s.cfg.OnEvent(s.raw.RemoteAddr(), e)
	}
	s.cfg.Logger.Warn("starttls event", "kind", e.Kind, "peer", s.peer(), "detail", e.Detail)
}

// Accept runs the server side of the upgrade on a freshly accepted
// connection and returns it upgraded: for STARTTLS protocols the greeting
// and dialogue are done and the client's next command is the application's
// to read; for implicit variants only the handshake is done, so the
// application sends the greeting. Under the Optional policy the returned
// Conn may be plaintext (Conn.TLS nil). On error conn is closed.
func Accept(ctx context.Context, conn net.Conn, proto Protocol, cfg *ServerConfig) (*Conn, error) {
	sp := lookupSpec(proto)
	if sp == nil || sp.server == nil {
		conn.Close()
		return nil, fmt.Errorf("%w %q (no server half)", ErrUnknownProtocol, proto)
	}
	cfg = cfg.orDefault()
	if cfg.TLSConfig == nil || (len(cfg.TLSConfig.Certificates) == 0 && cfg.TLSConfig.GetCertificate == nil && cfg.TLSConfig.GetConfigForClient == nil) {
		conn.Close()
		return nil, errors.New("starttls: ServerConfig.TLSConfig has no certificate")
	}
	s := &serverSession{ctx: ctx, cfg: cfg, sp: sp, raw: conn, out: conn, start: time.Now()}
	s.c = &Conn{Conn: conn, Protocol: sp.name, Implicit: sp.implicit}
	s.dl = wire.Bind(ctx, conn, cfg.PhaseTimeout)
	s.r = wire.NewReader(conn, cfg.MaxLineLength, cfg.MaxPreTLSBytes)
	s.r.OnLine = func(l string) { s.Record(false, l) }
	act, err := s.run()
	if err == nil && act == dialog.StartTLS {
		err = s.handshake()
	}
	s.dl.Release()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if act == dialog.Handoff {
		// Plaintext on purpose (Optional policy): the rest of the buffer is the
		// application's, starting with the command that ended the dialogue.
		s.r.OnLine = nil
		var src io.Reader = s.r
		if len(s.c.pending) > 0 {
			src = io.MultiReader(bytes.NewReader(s.c.pending), s.r)
			s.c.pending = nil
		}
		s.c.reader = wire.NewReader(src, s.cfg.MaxLineLength, -1)
	}
	s.c.Timings.Total = time.Since(s.start)
	return s.c, nil
}

func (s *serverSession) run() (dialog.Action, error) {
	h := s.sp.server
	if s.sp.implicit {
		return dialog.StartTLS, nil
	}
	s.phase = PhaseGreeting
	if h.Greet != nil {
		if err := h.Greet(s); err != nil {
			return 0, err
		}
	}
	s.phase = PhaseStartTLS
	var act dialog.Action
	var err error
	if h.Serve != nil {
		act, err = h.Serve(s)
	} else {
		act, err = s.lineLoop()
	}
	if err != nil || act != dialog.StartTLS {
		if act == dialog.Quit && err == nil {
			err = s.Fail(ErrClosed, "")
		}
		return act, err
	}
	if n := s.r.Buffered(); n > 0 {
		data := s.r.Pending()
		e := Event{Kind: EventCommandInjection, Data: data,
			Detail: fmt.Sprintf("%d bytes pipelined after STARTTLS", n)}
		s.event(e)
		if s.cfg.Injection == Close {
			return 0, fmt.Errorf("%w: %s", s.Fail(ErrInjection, dialog.Quote(data)), e.Detail)
		}
		// Discard: the bytes stay in the plaintext reader, which is dropped.
	}
	if h.GoAhead != nil {
		if err := h.GoAhead(s); err != nil {
			return 0, err
		}
	}
	return dialog.StartTLS, nil
}

func (s *serverSession) lineLoop() (dialog.Action, error) {
	for i := 0; i < s.cfg.MaxCommands; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return 0, err
		}
		act, err := s.sp.server.Command(s, line)
		if err != nil || act != dialog.Continue {
			if act == dialog.Handoff {
				s.c.pending = []byte(line + "\r\n")
			}
			return act, err
		}
	}
	return 0, s.Fail(fmt.Errorf("%w: more than %d commands before TLS", ErrProtocol, s.cfg.MaxCommands), "")
}

func (s *serverSession) handshake() error {
	s.phase = PhaseHandshake
	t := time.Now()
	conn := tls.Server(s.raw, serverTLS(s.cfg.TLSConfig, s.sp.alpn))
	s.dl.Phase()
	if err := conn.HandshakeContext(s.ctx); err != nil {
		return s.Fail(classifyHandshake(s.ctx, err), "")
	}
	s.c.Timings.Handshake = time.Since(t)
	s.c.Conn, s.c.TLS = conn, conn
	// The plaintext reader and anything left in it are dropped here.
	s.c.reader = wire.NewReader(conn, s.cfg.MaxLineLength, -1)
	if h := s.sp.server.AfterTLS; h != nil && !s.sp.implicit {
		s.phase = PhasePostTLS
		s.out = conn
		return h(s)
	}
	return nil
}

// Server accepts connections and hands each upgraded one to Handler.
type Server struct {
	Protocol Protocol
	Config   ServerConfig
	// Handler runs in its own goroutine per connection and owns it: it must
	// close it. ctx is canceled when Serve returns.
	Handler func(ctx context.Context, c *Conn)
	// OnError is told of connections that failed before reaching Handler.
	OnError func(remote net.Addr, err error)
}

// Serve accepts on l until ctx is canceled or l fails. It waits for running
// handlers before returning.
func (srv *Server) Serve(ctx context.Context, l net.Listener) error {
	if lookupSpec(srv.Protocol) == nil {
		return fmt.Errorf("%w %q", ErrUnknownProtocol, srv.Protocol)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		conn, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(20 * time.Millisecond)
				continue
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := Accept(ctx, conn, srv.Protocol, &srv.Config)
			if err != nil {
				if srv.OnError != nil {
					srv.OnError(conn.RemoteAddr(), err)
				}
				return
			}
			if srv.Handler == nil {
				c.Close()
				return
			}
			srv.Handler(ctx, c)
		}()
	}
}

// Listener wraps a net.Listener so that Accept returns upgraded
// connections, for code that wants a listener (net/http, gRPC). Failed
// upgrades are reported to OnError and skipped.
type Listener struct {
	net.Listener
	conns  chan *Conn
	once   sync.Once
	ctx    context.Context
	cancel context.CancelFunc
}

// NewListener starts upgrading inner's connections in the background.
func NewListener(inner net.Listener, proto Protocol, cfg *ServerConfig, onError func(net.Addr, error)) (*Listener, error) {
	if lookupSpec(proto) == nil {
		return nil, fmt.Errorf("%w %q", ErrUnknownProtocol, proto)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Listener{Listener: inner, conns: make(chan *Conn), ctx: ctx, cancel: cancel}
	go func() {
		defer close(l.conns)
		for {
			conn, err := inner.Accept()
			if err != nil {
				if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				// A transient failure (EMFILE, ...): back off rather than spin.
				time.Sleep(20 * time.Millisecond)
				continue
			}
			go func() {
				c, err := Accept(ctx, conn, proto, cfg)
				if err != nil {
					if onError != nil {
						onError(conn.RemoteAddr(), err)
					}
					return
				}
				select {
				case l.conns <- c:
				case <-ctx.Done():
					c.Close()
				}
			}()
		}
	}()
	return l, nil
}

// Accept returns the next upgraded connection.
//
// Upgraded connections come as the *tls.Conn itself when nothing of them
// has been read yet, so that net/http fills in Request.TLS; otherwise (and
// for plaintext hand-offs) as the *Conn.
func (l *Listener) Accept() (net.Conn, error) {
	c, ok := <-l.conns
	if !ok {
		return nil, net.ErrClosed
	}
	if c.TLS != nil && (c.reader == nil || c.reader.Buffered() == 0) {
		return c.TLS, nil
	}
	return c, nil
}

// Close stops accepting and abandons upgrades in progress.
func (l *Listener) Close() error {
	var err error
	l.once.Do(func() {
		l.cancel()
		err = l.Listener.Close()
	})
	return err
}

var _ io.Reader = (*Conn)(nil)
