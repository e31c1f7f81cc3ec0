package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/relayq"
)

// session is one client connection.
type session struct {
	srv    *Server
	l      *listener
	client net.Conn // the raw accepted connection
	start  time.Time
	tls    *tls.ConnectionState
	log    *slog.Logger
	batch  *batchConn // under the client's TLS, when the proxy is its server
}

func (s *session) run() {
	s.log = s.srv.log.With("listener", s.l.cfg.Name, "client", s.client.RemoteAddr().String())
	var reason string
	var up, down int64
	switch s.l.cfg.Mode {
	case Terminate:
		up, down, reason = s.terminate()
	case Implicit:
		up, down, reason = s.implicit()
	case Originate:
		up, down, reason = s.originate()
	}
	_ = s.client.Close()
	d := time.Since(s.start)
	s.srv.metrics.Latency(s.l.cfg.Name, PhaseSession, d)
	attrs := []any{"duration", d.Round(time.Millisecond).String(), "bytes_up", up, "bytes_down", down}
	if s.tls != nil {
		attrs = append(attrs, "tls", tls.VersionName(s.tls.Version), "cipher", tls.CipherSuiteName(s.tls.CipherSuite))
	}
	if reason != "" {
		s.srv.metrics.Failure(s.l.cfg.Name, reason)
		s.log.Warn("session failed", append(attrs, "reason", reason)...)
		return
	}
	s.log.Info("session closed", attrs...)
}

// serverTLS is the listener's TLS configuration with the handshake
// deadline set when the ClientHello arrives.
func (s *session) serverTLS() *tls.Config {
	tc := s.l.server.Clone()
	hs := s.l.cfg.Timeouts.Handshake
	next := tc.GetConfigForClient
	tc.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		_ = h.Conn.SetDeadline(time.Now().Add(hs))
		if next != nil {
			return next(h)
		}
		return nil, nil
	}
	return tc
}

// failReason names an upgrade failure for metrics and logs.
func failReason(side string, err error) string {
	if errors.Is(err, context.Canceled) {
		return ReasonShutdown
	}
	return side + "-" + string(starttls.StatusOf(err))
}

func (s *session) terminate() (up, down int64, reason string) {
	t := s.l.cfg.Timeouts
	ctx, cancel := context.WithTimeout(s.srv.hardCtx, t.PreTLS+t.Handshake)
	defer cancel()
	name := s.l.cfg.Name
	cfg := &starttls.ServerConfig{
		TLSConfig:    s.serverTLS(),
		Policy:       s.l.cfg.Policy,
		Injection:    s.l.cfg.Injection,
		Hostname:     s.l.cfg.Hostname,
		Capabilities: s.l.cfg.Capabilities,
		PhaseTimeout: t.PreTLS,
		Logger:       s.srv.log.With("listener", name),
		OnEvent: func(remote net.Addr, e starttls.Event) {
			if s.srv.opts.OnEvent != nil {
				s.srv.opts.OnEvent(name, remote, e)
			}
		},
	}
	s.batch = &batchConn{Conn: s.client}
	c, err := starttls.Accept(ctx, s.batch, s.l.cfg.Protocol, cfg)
	if err != nil {
		s.log.Debug("upgrade failed", "err", err)
		if errors.Is(err, starttls.ErrClosed) {
			return 0, 0, "" // the client said goodbye before TLS
		}
		return 0, 0, failReason("client", err)
	}
	var clientConn net.Conn = s.client
	if c.TLS != nil {
		st := c.ConnectionState()
		s.tls = &st
		s.srv.metrics.Handshake(name, st, c.Timings.Handshake)
		clientConn = c.TLS
	}
	backend, br, ir, greeting, reason := s.dialBackend(c.TLS != nil)
	if reason != "" {
		s.tellClient(clientConn, greeting, reason)
		return 0, 0, reason
	}
	defer s.srv.untrack(backend)
	if c.TLS == nil && s.l.app.Handoff != nil {
		_ = backend.SetDeadline(time.Now().Add(t.Connect))
		if err := s.l.app.Handoff(backend, br, c.ClientName); err != nil {
			_ = backend.Close()
			s.tellClient(clientConn, nil, ReasonBackendProto)
			return 0, 0, ReasonBackendProto
		}
		_ = backend.SetDeadline(time.Time{})
	}
	s.srv.metrics.Latency(name, PhaseSetup, time.Since(s.start))
	return s.relay(clientConn, c, backend, br, ir, nil)
}

func (s *session) implicit() (up, down int64, reason string) {
	t := s.l.cfg.Timeouts
	name := s.l.cfg.Name
	tc := s.l.server.Clone()
	s.batch = &batchConn{Conn: s.client}
	conn := tls.Server(s.batch, tc)
	ctx, cancel := context.WithTimeout(s.srv.hardCtx, t.Handshake)
	defer cancel()
	_ = s.client.SetDeadline(time.Now().Add(t.Handshake))
	hs := time.Now()
	if err := conn.HandshakeContext(ctx); err != nil {
		s.log.Debug("handshake failed", "err", err)
		if ctx.Err() != nil || isTimeout(err) {
			return 0, 0, "client-" + string(starttls.StatusTimeout)
		}
		if errors.Is(err, io.EOF) {
			return 0, 0, "client-" + string(starttls.StatusClosed)
		}
		return 0, 0, "client-" + string(starttls.StatusHandshake)
	}
	_ = s.client.SetDeadline(time.Time{})
	st := conn.ConnectionState()
	s.tls = &st
	s.srv.metrics.Handshake(name, st, time.Since(hs))
	backend, br, ir, greeting, reason := s.dialBackend(true)
	if reason != "" {
		s.tellClient(conn, greeting, reason)
		return 0, 0, reason
	}
	defer s.srv.untrack(backend)
	s.srv.metrics.Latency(name, PhaseSetup, time.Since(s.start))
	// The backend's greeting goes to the client (through the filter).
	return s.relay(conn, conn, backend, br, ir, greeting)
}

func (s *session) originate() (up, down int64, reason string) {
	t := s.l.cfg.Timeouts
	name := s.l.cfg.Name
	ctx, cancel := context.WithTimeout(s.srv.hardCtx, t.Connect)
	defer cancel()
	bs := time.Now()
	remote, err := starttls.Dial(ctx, s.l.cfg.Protocol, s.l.cfg.Backend, &starttls.Config{
		TLSConfig:    s.l.client,
		LocalName:    s.l.cfg.LocalName,
		PhaseTimeout: t.Connect,
		Logger:       s.srv.log.With("listener", name),
		// The local client asks for the capabilities itself, inside TLS
		// through the relay: the library's own query would be a round
		// trip through the remote before the client is even greeted.
		SkipCapabilityQuery: true,
	})
	if err != nil {
		reason := failReason("remote", err)
		s.log.Warn("remote upgrade failed", "remote", s.l.cfg.Backend, "err", err)
		s.tellClient(s.client, nil, reason)
		return 0, 0, reason
	}
	if !s.srv.track(remote) {
		return 0, 0, ReasonShutdown
	}
	defer s.srv.untrack(remote)
	st := remote.ConnectionState()
	s.tls = &st
	s.srv.metrics.Handshake(name, st, remote.Timings.Handshake)
	s.srv.metrics.Latency(name, PhaseBackend, time.Since(bs))
	if h := s.l.app.Hello; h != nil {
		_ = s.client.SetWriteDeadline(time.Now().Add(t.Connect))
		if _, err := io.WriteString(s.client, h(s.l.cfg.Hostname)); err != nil {
			_ = remote.Close()
			return 0, 0, ReasonRelayError
		}
	}
	s.srv.metrics.Latency(name, PhaseSetup, time.Since(s.start))
	var remoteConn net.Conn = remote
	if remote.TLS != nil {
		remoteConn = remote.TLS
	}
	ir := newIdleReader(remote, remoteConn, t.Idle, &activity{})
	return s.relay(s.client, s.client, remoteConn, bufio.NewReaderSize(ir, 16<<10), ir, nil)
}

// dialBackend connects to the backend, sends the PROXY header and reads
// the greeting. The reader it returns reads the backend through ir (under
// the connect timeout until relay switches it to the idle one). On failure
// reason is set and greeting, if any, is the backend's refusal to forward
// to the client.
func (s *session) dialBackend(secure bool) (conn net.Conn, br *bufio.Reader, ir *idleReader, greeting []byte, reason string) {
	t := s.l.cfg.Timeouts
	name := s.l.cfg.Name
	start := time.Now()
	ctx, cancel := context.WithTimeout(s.srv.hardCtx, t.Connect)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.l.cfg.Backend)
	if err != nil {
		s.log.Warn("backend unreachable", "backend", s.l.cfg.Backend, "err", err)
		if s.srv.hardCtx.Err() != nil {
			return nil, nil, nil, nil, ReasonShutdown
		}
		return nil, nil, nil, nil, ReasonBackendDown
	}
	if !s.srv.track(conn) {
		return nil, nil, nil, nil, ReasonShutdown
	}
	fail := func(r string, g []byte) (net.Conn, *bufio.Reader, *idleReader, []byte, string) {
		_ = conn.Close()
		s.srv.untrack(conn)
		return nil, nil, nil, g, r
	}
	_ = conn.SetWriteDeadline(time.Now().Add(t.Connect))
	if s.l.cfg.ProxyProtocol {
		var st *tls.ConnectionState
		if secure {
			st = s.tls
		}
		if _, err := conn.Write(proxyHeader(s.client.RemoteAddr(), s.client.LocalAddr(), st)); err != nil {
			s.log.Warn("backend write failed", "backend", s.l.cfg.Backend, "err", err)
			return fail(ReasonBackendDown, nil)
		}
	}
	_ = conn.SetWriteDeadline(time.Time{})
	ir = newIdleReader(conn, conn, t.Connect, &activity{})
	// 32 KiB reads, as io.Copy's: half the read calls of a record-sized
	// buffer, and what arrives goes out as two full TLS records.
	br = bufio.NewReaderSize(ir, 32<<10)
	if g := s.l.app.Greeting; g != nil {
		raw, ok, err := g(br)
		if err != nil {
			s.log.Warn("backend greeting failed", "backend", s.l.cfg.Backend, "err", err)
			if errors.Is(err, relayq.ErrBackendProto) {
				return fail(ReasonBackendProto, nil)
			}
			return fail(ReasonBackendDown, nil)
		}
		if !ok {
			s.log.Warn("backend refused the session", "backend", s.l.cfg.Backend, "greeting", string(relayq.TrimEOL(raw)))
			return fail(ReasonBackendDown, raw)
		}
		greeting = raw
	}
	s.srv.metrics.Latency(name, PhaseBackend, time.Since(start))
	return conn, br, ir, greeting, ""
}

// tellClient sends the protocol's clean error (or the backend's own
// refusal) before closing.
func (s *session) tellClient(c net.Conn, backendSaid []byte, reason string) {
	msg := string(backendSaid)
	if msg == "" && s.l.app.Unavailable != nil && reason != ReasonShutdown {
		msg = s.l.app.Unavailable(s.l.cfg.Hostname)
	}
	if msg == "" {
		return
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(c, msg)
	if cw, ok := c.(closeWriter); ok {
		_ = cw.CloseWrite()
	}
}

// refuse answers a connection over a limit and closes it.
func (l *listener) refuse(conn net.Conn) {
	defer conn.Close()
	if l.cfg.Mode == Implicit || l.app.TooMany == "" {
		return
	}
	_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = io.WriteString(conn, l.app.TooMany)
}
