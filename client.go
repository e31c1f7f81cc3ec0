package starttls

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

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

// The methods below make a clientSession the dialog.Client the protocol
// folders' client halves drive.
var _ dialog.Client = (*clientSession)(nil)

// Fail builds the error for a condition seen in the current phase.
func (s *clientSession) Fail(cond error, reply string) error {
	return &ProtocolError{Protocol: s.sp.name, Peer: s.peer(), Phase: s.phase, Reply: reply, Err: cond}
}

// Failf is Fail with a formatted detail wrapped around the condition.
func (s *clientSession) Failf(cond error, reply, format string, args ...any) error {
	return s.Fail(fmt.Errorf("%w: %s", cond, fmt.Sprintf(format, args...)), reply)
}

func (s *clientSession) IOErr(err error) error {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return err
	}
	return s.FailIO(err, "")
}

// FailIO is the session's error for an I/O error, reply as evidence.
func (s *clientSession) FailIO(err error, reply string) error {
	return s.Fail(classifyIO(s.ctx, err), reply)
}

func (s *clientSession) record(sent bool, text string) {
	s.c.Transcript = append(s.c.Transcript, Exchange{At: time.Since(s.start), Sent: sent, TLS: s.inTLS, Text: text})
}

// Send writes one command line with CRLF.
func (s *clientSession) Send(line string) error {
	s.dl.Phase()
	s.record(true, line)
	if _, err := io.WriteString(s.conn, line+"\r\n"+s.auditPipeline()); err != nil {
		return s.IOErr(err)
	}
	return nil
}

// SendRaw writes the bytes of a binary or XML protocol message in one
// write; desc stands for them in the transcript.
func (s *clientSession) SendRaw(b []byte, desc string) error {
	s.dl.Phase()
	s.record(true, desc)
	if p := s.auditPipeline(); p != "" {
		b = append(append([]byte{}, b...), p...)
	}
	if _, err := s.conn.Write(b); err != nil {
		return s.IOErr(err)
	}
	return nil
}

// ReadLine reads one bounded line.
func (s *clientSession) ReadLine() (string, error) {
	s.dl.Phase()
	l, err := s.r.ReadLine()
	if err != nil {
		return "", s.IOErr(err)
	}
	return l, nil
}

// ReadFull reads exactly len(p) bytes (binary protocols).
func (s *clientSession) ReadFull(p []byte) error {
	s.dl.Phase()
	if err := s.r.ReadFull(p); err != nil {
		return s.IOErr(err)
	}
	return nil
}

func (s *clientSession) Reader() *wire.Reader { return s.r }
func (s *clientSession) ResetDeadline()       { s.dl.Phase() }
func (s *clientSession) Received(text string) { s.record(false, text) }
func (s *clientSession) InTLS() bool          { return s.inTLS }
func (s *clientSession) SetPhase(p string)    { s.phase = Phase(p) }
func (s *clientSession) Greeting() string     { return s.c.Greeting }
func (s *clientSession) SetGreeting(g string) { s.c.Greeting = g }
func (s *clientSession) CapabilitiesBefore() dialog.Capabilities {
	return dialog.Capabilities(s.c.CapabilitiesBefore)
}

func (s *clientSession) SetCaps(caps dialog.Capabilities, offered bool) {
	s.caps, s.offered = Capabilities(caps), offered
}

func (s *clientSession) NextTag() int {
	s.tag++
	return s.tag
}

func (s *clientSession) Config() dialog.ClientConfig {
	return dialog.ClientConfig{LocalName: s.cfg.LocalName, Domain: s.cfg.Domain, Host: s.host,
		MaxLineLength: s.cfg.MaxLineLength, MaxPreTLSBytes: s.cfg.MaxPreTLSBytes}
}

// nothingBuffered enforces "nothing crosses the upgrade" at a point where
// the server must be silent.
func (s *clientSession) nothingBuffered(where string) error {
	if n := s.r.Buffered(); n > 0 {
		return s.Failf(ErrInjection, dialog.Quote(s.r.Pending()), "%d bytes received %s", n, where)
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
		if err := h.Greet(s); err != nil {
			return err
		}
		s.c.Timings.Greeting = time.Since(t)
		s.c.Capabilities = s.caps
		return nil
	}

	s.phase = PhaseGreeting
	t := time.Now()
	if err := h.Greet(s); err != nil {
		return err
	}
	s.c.Timings.Greeting = time.Since(t)
	s.c.CapabilitiesBefore = s.caps
	s.caps = nil
	if !s.offered {
		s.phase = PhaseCaps
		return s.fallback(s.Fail(ErrNotOffered, ""))
	}

	s.phase = PhaseStartTLS
	t = time.Now()
	// A server has no business talking before we ask; whatever it sent
	// early could be mistaken for the answer to STARTTLS.
	if !h.Unsolicited {
		if err := s.nothingBuffered("before the STARTTLS command was sent"); err != nil {
			return err
		}
	}
	if err := h.Upgrade(s); err != nil {
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
	if h.Requery != nil && s.cfg.SkipCapabilityQuery {
		s.c.Capabilities = nil
		return nil
	}
	if h.Requery != nil && s.cfg.PipelineAfterUpgrade == nil {
		s.phase = PhasePostTLS
		t = time.Now()
		if err := h.Requery(s); err != nil {
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
		return s.Fail(classifyHandshake(s.ctx, err), "")
	}
	s.c.Timings.Handshake = time.Since(t)
	s.conn, s.c.Conn, s.c.TLS = tc, tc, tc
	s.inTLS = true
	// A fresh reader: the plaintext one is dropped with whatever it held.
	s.newReader(-1)
	return nil
}
