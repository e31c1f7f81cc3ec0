package starttls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/starttls-go/starttls/internal/wire"
)

// clientHalf is one protocol's client side of the upgrade.
type clientHalf struct {
	// greet reads the greeting and asks for capabilities; it sets s.caps and
	// s.offered. It runs in plaintext, or inside TLS for implicit variants.
	greet func(s *clientSession) error
	// upgrade asks for TLS and returns once the server has said go ahead.
	upgrade func(s *clientSession) error
	// requery asks for capabilities again inside TLS (nil: nothing to ask).
	requery func(s *clientSession) error
	// quit sends the polite goodbye and reads its answer (best effort).
	quit func(s *clientSession) error
	// unsolicited: the server may send lines unasked before the go-ahead
	// (IRC notices), which upgrade reads and skips; only bytes after the
	// go-ahead are then injection.
	unsolicited bool
}

// clientSession is the state of one client dialogue.
type clientSession struct {
	ctx     context.Context
	cfg     *Config
	sp      *spec
	raw     net.Conn
	conn    net.Conn // raw, then the *tls.Conn
	r       *wire.Reader
	dl      *wire.Deadline
	c       *Conn
	start   time.Time
	phase   Phase
	inTLS   bool
	offered bool
	caps    Capabilities
	tag     int    // IMAP tag counter
	host    string // the host dialled, for names
}

func (s *clientSession) peer() string { return s.raw.RemoteAddr().String() }

// fail builds the error for a condition seen in the current phase.
func (s *clientSession) fail(cond error, reply string) error {
	return &ProtocolError{Protocol: s.sp.name, Peer: s.peer(), Phase: s.phase, Reply: reply, Err: cond}
}

// failf is fail with a formatted detail wrapped around the condition.
func (s *clientSession) failf(cond error, reply, format string, args ...any) error {
	return s.fail(fmt.Errorf("%w: %s", cond, fmt.Sprintf(format, args...)), reply)
}

func (s *clientSession) ioErr(err error) error {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return err
	}
	return s.fail(classifyIO(s.ctx, err), "")
}

func (s *clientSession) record(sent bool, text string) {
	s.c.Transcript = append(s.c.Transcript, Exchange{At: time.Since(s.start), Sent: sent, TLS: s.inTLS, Text: text})
}

// send writes one command line with CRLF.
func (s *clientSession) send(line string) error {
	s.dl.Phase()
	s.record(true, line)
	if _, err := io.WriteString(s.conn, line+"\r\n"+s.auditPipeline()); err != nil {
		return s.ioErr(err)
	}
	return nil
}

// sendRaw writes the bytes of a binary or XML protocol message in one
// write; desc stands for them in the transcript.
func (s *clientSession) sendRaw(b []byte, desc string) error {
	s.dl.Phase()
	s.record(true, desc)
	if p := s.auditPipeline(); p != "" {
		b = append(append([]byte{}, b...), p...)
	}
	if _, err := s.conn.Write(b); err != nil {
		return s.ioErr(err)
	}
	return nil
}

// readLine reads one bounded line.
func (s *clientSession) readLine() (string, error) {
	s.dl.Phase()
	l, err := s.r.ReadLine()
	if err != nil {
		return "", s.ioErr(err)
	}
	return l, nil
}

// readFull reads exactly len(p) bytes (binary protocols).
func (s *clientSession) readFull(p []byte) error {
	s.dl.Phase()
	if err := s.r.ReadFull(p); err != nil {
		return s.ioErr(err)
	}
	return nil
}

// nothingBuffered enforces "nothing crosses the upgrade" at a point where
// the server must be silent.
func (s *clientSession) nothingBuffered(where string) error {
	if n := s.r.Buffered(); n > 0 {
		return s.failf(ErrInjection, quote(s.r.Pending()), "%d bytes received %s", n, where)
	}
	return nil
}

func (s *clientSession) newReader(budget int) {
	s.r = wire.NewReader(s.conn, s.cfg.MaxLineLength, budget)
	s.r.OnLine = func(l string) { s.record(false, l) }
}

func runClient(ctx context.Context, raw net.Conn, sp *spec, cfg *Config, host string, connect time.Duration) (*Conn, error) {
	s := &clientSession{ctx: ctx, cfg: cfg, sp: sp, raw: raw, conn: raw, host: host, start: time.Now().Add(-connect)}
	s.c = &Conn{Conn: raw, Protocol: sp.name, Implicit: sp.implicit}
	s.c.Timings.Connect = connect
	s.dl = wire.Bind(ctx, raw, cfg.PhaseTimeout)
	s.newReader(cfg.MaxPreTLSBytes)
	err := s.run()
	s.dl.Release()
	if err != nil {
		raw.Close()
		s.annotate(err)
		return nil, err
	}
	s.c.reader = s.r
	s.c.session = s
	s.c.Timings.Total = time.Since(s.start)
	return s.c, nil
}

func (s *clientSession) run() error {
	h := s.sp.client
	if h == nil {
		return fmt.Errorf("%w: %s has no client half", ErrUnknownProtocol, s.sp.name)
	}
	if s.sp.implicit {
		if s.cfg.noHandshake {
			return nil
		}
		if err := s.handshake(); err != nil {
			return err
		}
		s.phase = PhaseGreeting
		t := time.Now()
		if err := h.greet(s); err != nil {
			return err
		}
		s.c.Timings.Greeting = time.Since(t)
		s.c.Capabilities = s.caps
		return nil
	}

	s.phase = PhaseGreeting
	t := time.Now()
	if err := h.greet(s); err != nil {
		return err
	}
	s.c.Timings.Greeting = time.Since(t)
	s.c.CapabilitiesBefore = s.caps
	s.caps = nil
	if !s.offered {
		s.phase = PhaseCaps
		return s.fallback(s.fail(ErrNotOffered, ""))
	}

	s.phase = PhaseStartTLS
	t = time.Now()
	// A server has no business talking before we ask; whatever it sent
	// early could be mistaken for the answer to STARTTLS.
	if !h.unsolicited {
		if err := s.nothingBuffered("before the STARTTLS command was sent"); err != nil {
			return err
		}
	}
	if err := h.upgrade(s); err != nil {
		if errors.Is(err, ErrRefused) {
			return s.fallback(err)
		}
		return err
	}
	if err := s.nothingBuffered("after the server's go-ahead, before the TLS handshake"); err != nil {
		return err
	}
	s.c.Timings.Dialogue = time.Since(t)
	if s.cfg.noHandshake {
		return nil
	}

	if err := s.handshake(); err != nil {
		return err
	}
	if h.requery != nil && s.cfg.SkipCapabilityQuery {
		s.c.Capabilities = nil
		return nil
	}
	if h.requery != nil && s.cfg.PipelineAfterUpgrade == nil {
		s.phase = PhasePostTLS
		t = time.Now()
		if err := h.requery(s); err != nil {
			return err
		}
		s.c.Timings.PostTLS = time.Since(t)
	}
	s.c.Capabilities = s.caps
	return nil
}

// annotate copies what the dialogue had seen into err's ProtocolError.
func (s *clientSession) annotate(err error) {
	var pe *ProtocolError
	if !errors.As(err, &pe) {
		return
	}
	pe.Greeting = s.c.Greeting
	pe.CapabilitiesBefore = s.c.CapabilitiesBefore
	if pe.CapabilitiesBefore == nil && !s.inTLS {
		pe.CapabilitiesBefore = s.caps
	}
	pe.Transcript = s.c.Transcript
	if s.r != nil && !s.inTLS {
		pe.Received = s.r.Seen()
	}
}

// fallback ends the dialogue in plaintext when the caller allowed it.
func (s *clientSession) fallback(err error) error {
	if !s.cfg.Opportunistic {
		return err
	}
	s.c.Fallback = err
	s.c.Capabilities = s.c.CapabilitiesBefore
	return nil
}

func (s *clientSession) handshake() error {
	s.phase = PhaseHandshake
	t := time.Now()
	tcfg := s.cfg.tlsConfig(s.host)
	if len(tcfg.NextProtos) == 0 {
		tcfg.NextProtos = s.sp.alpn
	}
	tc := tls.Client(s.raw, tcfg)
	s.dl.Phase()
	if err := tc.HandshakeContext(s.ctx); err != nil {
		return s.fail(classifyHandshake(s.ctx, err), "")
	}
	s.c.Timings.Handshake = time.Since(t)
	s.conn, s.c.Conn, s.c.TLS = tc, tc, tc
	s.inTLS = true
	// A fresh reader: the plaintext one is dropped with whatever it held.
	s.newReader(-1)
	return nil
}

// quote keeps evidence short; ProtocolError prints it escaped.
func quote(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}
