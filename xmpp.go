package starttls

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/xmpp"

	"github.com/starttls-go/starttls/internal/wire"
)

// XMPP (RFC 6120 §5): client-to-server ("xmpp", jabber:client) and
// server-to-server ("xmpp-server", jabber:server) streams, and their
// implicit-TLS ports (XEP-0368). The dialogue is XML, read token by token
// with encoding/xml from the bounded wire reader, one byte at a time, so
// that nothing past the element being decoded is consumed and the
// "nothing crosses the upgrade" check sees every byte the peer pipelined.

// newXMPPStream reads a stream from r within the pre-TLS byte budget.
func newXMPPStream(r *wire.Reader, prime string, maxBytes, maxText int) *xmpp.Stream {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPreTLSBytes
	}
	return xmpp.NewStream(r, prime, maxBytes, maxText)
}

// xmppStream starts reading the server's stream; prime is the server's
// stream header when the stream is already open.
func (s *clientSession) xmppStream(prime string) *xmpp.Stream {
	return newXMPPStream(s.r, prime, s.cfg.MaxPreTLSBytes, s.cfg.MaxLineLength)
}

// xmppFail turns a read error into the session's error, with what was read as evidence.
func (s *clientSession) xmppFail(x *xmpp.Stream, err error) error {
	return s.fail(classifyIO(s.ctx, err), x.Raw())
}

// xmppResume reads the server's header again from the prime, so that the
// decoder knows the stream's namespaces.
func (s *clientSession) xmppResume() (*xmpp.Stream, error) {
	x := s.xmppStream(s.c.Greeting)
	if _, err := x.Header(); err != nil {
		return nil, s.failf(wire.ErrProtocol, "", "no open XML stream to resume: %v", err)
	}
	return x, nil
}

func xmppClient(ns string) *clientHalf {
	// open starts a stream and reads the server's header and features;
	// refusal is the condition a <stream:error> stands for.
	open := func(s *clientSession, refusal error) error {
		domain := s.cfg.Domain
		if domain == "" {
			domain = s.host
		}
		hdr := "<?xml version='1.0'?><stream:stream to='" + xmpp.Escape(domain) + "'"
		if ns == xmpp.NSServer {
			hdr += " from='" + xmpp.Escape(s.cfg.LocalName) + "'"
		}
		hdr += " version='1.0' xmlns='" + ns + "' xmlns:stream='" + xmpp.NSStreams + "'>"
		if err := s.sendRaw([]byte(hdr), hdr); err != nil {
			return err
		}
		x := s.xmppStream("")
		s.dl.Phase()
		h, err := x.Header()
		if err != nil {
			return s.xmppFail(x, err)
		}
		s.record(false, x.Raw())
		// The header is kept (whole: it is parsed again to resume the
		// stream for STARTTLS and for the goodbye).
		s.c.Greeting = string(x.Bytes())
		if v, _ := xmpp.AttrValue(h, "xmlns"); v != ns {
			return s.failf(wire.ErrProtocol, x.Raw(), "stream namespace %q, want %q", v, ns)
		}
		if !s.inTLS {
			s.phase = PhaseCaps
		}
		if !xmpp.VersionOK(h) {
			// A pre-1.0 stream (RFC 6120 §4.7.5) has no features: no STARTTLS.
			return s.failf(ErrNotOffered, x.Raw(), "server stream has no version 1.0 (no stream features)")
		}
		s.dl.Phase()
		f, err := x.Element()
		if err != nil {
			return s.xmppFail(x, err)
		}
		switch {
		case f == nil:
			return s.failf(ErrClosed, x.Raw(), "server closed the stream")
		case f.Is(xmpp.NSStreams, "error"):
			s.record(false, x.Raw())
			return s.failf(refusal, x.Raw(), "%s", xmpp.StreamError(f))
		case !f.Is(xmpp.NSStreams, "features"):
			return s.failf(wire.ErrProtocol, x.Raw(), "<%s> where <stream:features> should be", xmpp.NameString(f.Name))
		}
		s.record(false, x.Raw())
		caps, offered := xmpp.Features(f)
		s.caps, s.offered = Capabilities(caps), offered
		return nil
	}
	return &clientHalf{
		greet: func(s *clientSession) error { return open(s, ErrRefused) },
		upgrade: func(s *clientSession) error {
			if err := s.sendRaw([]byte(xmpp.StartTLS), xmpp.StartTLS); err != nil {
				return err
			}
			x, err := s.xmppResume()
			if err != nil {
				return err
			}
			s.dl.Phase()
			e, err := x.Element()
			if err != nil {
				return s.xmppFail(x, err)
			}
			if e == nil {
				return s.failf(ErrClosed, x.Raw(), "server closed the stream in answer to STARTTLS")
			}
			s.record(false, x.Raw())
			switch {
			case e.Is(xmpp.NSTLS, "proceed"):
				return nil
			case e.Is(xmpp.NSTLS, "failure"):
				return s.failf(ErrRefused, x.Raw(), "server answered <failure/>")
			case e.Is(xmpp.NSStreams, "error"):
				return s.failf(ErrRefused, x.Raw(), "%s", xmpp.StreamError(e))
			}
			return s.failf(wire.ErrProtocol, x.Raw(), "<%s> in answer to STARTTLS", xmpp.NameString(e.Name))
		},
		// RFC 6120 §5.4.3.3: both sides restart the stream inside TLS.
		requery: func(s *clientSession) error { return open(s, wire.ErrProtocol) },
		quit: func(s *clientSession) error {
			if err := s.sendRaw([]byte(xmpp.Close), xmpp.Close); err != nil {
				return err
			}
			x, err := s.xmppResume()
			if err != nil {
				return err
			}
			for i := 0; i < 100; i++ {
				s.dl.Phase()
				e, err := x.Element()
				if err != nil {
					return s.xmppFail(x, err)
				}
				if e == nil {
					return nil
				}
			}
			return s.failf(wire.ErrProtocol, "", "server did not close its stream")
		},
	}
}

func xmppServer(ns string) *serverHalf {
	return &serverHalf{
		goAhead: func(s *serverSession) error { return s.sendRaw([]byte(xmpp.Proceed), xmpp.Proceed) },
		serve:   func(s *serverSession) (action, error) { return xmppServe(s, ns) },
	}
}

// xmppServe reads the client's stream header, answers with ours and the
// features, and waits for <starttls/>.
func xmppServe(s *serverSession, ns string) (action, error) {
	x := newXMPPStream(s.r, "", s.cfg.MaxPreTLSBytes, s.cfg.MaxLineLength)
	opened := false
	ourHeader := func(to string) string {
		h := "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + xmpp.NSStreams +
			"' id='" + rand.Text() + "' from='" + xmpp.Escape(s.cfg.Hostname) + "'"
		if to != "" {
			h += " to='" + xmpp.Escape(to) + "'"
		}
		return h + " version='1.0'>"
	}
	// streamError ends the stream with a condition (RFC 6120 §4.9); the
	// header comes first if it was not sent yet.
	streamError := func(cond, text string, cause error) (action, error) {
		var b strings.Builder
		if !opened {
			b.WriteString(ourHeader(""))
		}
		b.WriteString("<stream:error><" + cond + " xmlns='" + xmpp.NSStreamErr + "'/>")
		if text != "" {
			b.WriteString("<text xmlns='" + xmpp.NSStreamErr + "'>" + xmpp.Escape(text) + "</text>")
		}
		b.WriteString("</stream:error>" + xmpp.Close)
		_ = s.sendRaw([]byte(b.String()), "<stream:error><"+cond+"/></stream:error>")
		return 0, cause
	}
	readErr := func(err error) (action, error) {
		e := s.fail(classifyIO(s.ctx, err), x.Raw())
		switch {
		case errors.Is(err, xmpp.ErrRestricted):
			return streamError("restricted-xml", "", e)
		case errors.Is(err, xmpp.ErrNotWellFormed):
			return streamError("not-well-formed", "", e)
		case errors.Is(err, wire.ErrProtocol):
			return streamError("bad-format", "", e)
		case errors.Is(err, wire.ErrLineTooLong), errors.Is(err, wire.ErrTooMuchData):
			return streamError("policy-violation", "too much data before TLS", e)
		}
		return 0, e
	}

	s.phase = PhaseGreeting
	s.dl.Phase()
	h, err := x.Header()
	if err != nil {
		return readErr(err)
	}
	s.record(false, x.Raw())
	to, _ := xmpp.AttrValue(h, "to")
	from, _ := xmpp.AttrValue(h, "from")
	if v, _ := xmpp.AttrValue(h, "xmlns"); v != ns {
		return streamError("invalid-namespace", "", s.fail(fmt.Errorf("%w: stream namespace %q, want %q", wire.ErrProtocol, v, ns), x.Raw()))
	}
	if !xmpp.VersionOK(h) {
		return streamError("unsupported-version", "version 1.0 is required for STARTTLS",
			s.fail(fmt.Errorf("%w: client stream without version 1.0", wire.ErrProtocol), x.Raw()))
	}
	if to != "" && !strings.EqualFold(to, s.cfg.Hostname) {
		return streamError("host-unknown", "", s.fail(fmt.Errorf("%w: stream to %q, this is %q", wire.ErrProtocol, to, s.cfg.Hostname), x.Raw()))
	}
	s.c.ClientName = from

	features := "<stream:features><starttls xmlns='" + xmpp.NSTLS + "'>"
	if s.cfg.Policy == Required {
		features += "<required/>"
	}
	features += "</starttls>"
	// advertised() has already dropped AUTH/SASL entries under Required.
	caps := Capabilities(s.cfg.advertised())
	var mechs []string
	for _, kw := range []string{"AUTH", "SASL"} {
		args, _ := caps.Args(kw)
		for _, m := range args {
			if m = strings.ToUpper(m); xmpp.SASLMechName(m) {
				mechs = append(mechs, "<mechanism>"+m+"</mechanism>")
			}
		}
	}
	if len(mechs) > 0 {
		features += "<mechanisms xmlns='" + xmpp.NSSASL + "'>" + strings.Join(mechs, "") + "</mechanisms>"
	}
	features += "</stream:features>"
	hdr := ourHeader(from)
	s.record(true, hdr)
	s.record(true, features)
	if err := s.sendRaw([]byte(hdr+features), ""); err != nil {
		return 0, err
	}
	opened = true

	// One element decides: <starttls/>, the end of the stream, or (RFC
	// 6120 §5.3.1) anything else, which under Required ends the stream.
	s.phase = PhaseStartTLS
	s.dl.Phase()
	e, err := x.Element()
	if err != nil {
		return readErr(err)
	}
	if e == nil {
		_ = s.sendRaw([]byte(xmpp.Close), xmpp.Close)
		return actQuit, nil
	}
	s.record(false, x.Raw())
	switch {
	case e.Is(xmpp.NSTLS, "starttls"):
		xmppSkipTrailingSpace(s.r)
		return actStartTLS, nil
	case e.Is(xmpp.NSStreams, "error"):
		return 0, s.fail(fmt.Errorf("%w: client sent %s", ErrClosed, xmpp.StreamError(e)), x.Raw())
	case s.cfg.Policy == Optional:
		// The application takes the plaintext stream, starting with this stanza.
		s.c.pending = append([]byte(nil), x.Bytes()...)
		return actHandoff, nil
	}
	return streamError("policy-violation", "STARTTLS is required",
		s.fail(fmt.Errorf("%w: <%s> before STARTTLS (TLS required)", wire.ErrProtocol, xmpp.NameString(e.Name)), x.Raw()))
}

// xmppSkipTrailingSpace drops a line ending that arrived with <starttls/>
// (clients that end every write with a newline, as gnutls-cli does its
// stream header): XML whitespace is no stanza and cannot be executed. Only
// whitespace, and only when it is all that is buffered: anything else stays
// for the injection check.
func xmppSkipTrailingSpace(r *wire.Reader) {
	n := r.Buffered()
	if n == 0 || n > 4 || !xmpp.IsSpace(r.Pending()) {
		return
	}
	for i := 0; i < n; i++ {
		_, _ = r.ReadByte()
	}
}
