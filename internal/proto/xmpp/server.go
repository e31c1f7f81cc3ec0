package xmpp

import (
	"crypto/rand"
	"errors"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

// serverHalf is XMPP's server side of the upgrade for stream namespace ns, registered by init.
func serverHalf(ns string) *dialog.ServerHalf {
	return &dialog.ServerHalf{
		GoAhead: func(s dialog.Server) error { return s.SendRaw([]byte(Proceed), Proceed) },
		Serve:   func(s dialog.Server) (dialog.Action, error) { return serverServe(s, ns) },
	}
}

// serverServe reads the client's stream header, answers with ours and the
// features, and waits for <starttls/>.
func serverServe(s dialog.Server, ns string) (dialog.Action, error) {
	x := NewStream(s.Reader(), "", s.Config().MaxPreTLSBytes, s.Config().MaxLineLength)
	opened := false
	ourHeader := func(to string) string {
		h := "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + NSStreams +
			"' id='" + rand.Text() + "' from='" + Escape(s.Config().Hostname) + "'"
		if to != "" {
			h += " to='" + Escape(to) + "'"
		}
		return h + " version='1.0'>"
	}
	// streamError ends the stream with a condition (RFC 6120 §4.9); the
	// header comes first if it was not sent yet.
	streamError := func(cond, text string, cause error) (dialog.Action, error) {
		var b strings.Builder
		if !opened {
			b.WriteString(ourHeader(""))
		}
		b.WriteString("<stream:error><" + cond + " xmlns='" + NSStreamErr + "'/>")
		if text != "" {
			b.WriteString("<text xmlns='" + NSStreamErr + "'>" + Escape(text) + "</text>")
		}
		b.WriteString("</stream:error>" + Close)
		_ = s.SendRaw([]byte(b.String()), "<stream:error><"+cond+"/></stream:error>")
		return 0, cause
	}
	readErr := func(err error) (dialog.Action, error) {
		e := s.FailIO(err, x.Raw())
		switch {
		case errors.Is(err, ErrRestricted):
			return streamError("restricted-xml", "", e)
		case errors.Is(err, ErrNotWellFormed):
			return streamError("not-well-formed", "", e)
		case errors.Is(err, wire.ErrProtocol):
			return streamError("bad-format", "", e)
		case errors.Is(err, wire.ErrLineTooLong), errors.Is(err, wire.ErrTooMuchData):
			return streamError("policy-violation", "too much data before TLS", e)
		}
		return 0, e
	}

	s.SetPhase(dialog.PhaseGreeting)
	s.ResetDeadline()
	h, err := x.Header()
	if err != nil {
		return readErr(err)
	}
	s.Record(false, x.Raw())
	to, _ := AttrValue(h, "to")
	from, _ := AttrValue(h, "from")
	if v, _ := AttrValue(h, "xmlns"); v != ns {
		return streamError("invalid-namespace", "", s.Fail(fmt.Errorf("%w: stream namespace %q, want %q", wire.ErrProtocol, v, ns), x.Raw()))
	}
	if !VersionOK(h) {
		return streamError("unsupported-version", "version 1.0 is required for STARTTLS",
			s.Fail(fmt.Errorf("%w: client stream without version 1.0", wire.ErrProtocol), x.Raw()))
	}
	if to != "" && !strings.EqualFold(to, s.Config().Hostname) {
		return streamError("host-unknown", "", s.Fail(fmt.Errorf("%w: stream to %q, this is %q", wire.ErrProtocol, to, s.Config().Hostname), x.Raw()))
	}
	s.SetClientName(from)

	features := "<stream:features><starttls xmlns='" + NSTLS + "'>"
	if !s.Config().Optional {
		features += "<required/>"
	}
	features += "</starttls>"
	// advertised() has already dropped AUTH/SASL entries under Required.
	caps := dialog.Capabilities(s.Config().Advertised)
	var mechs []string
	for _, kw := range []string{"AUTH", "SASL"} {
		args, _ := caps.Args(kw)
		for _, m := range args {
			if m = strings.ToUpper(m); SASLMechName(m) {
				mechs = append(mechs, "<mechanism>"+m+"</mechanism>")
			}
		}
	}
	if len(mechs) > 0 {
		features += "<mechanisms xmlns='" + NSSASL + "'>" + strings.Join(mechs, "") + "</mechanisms>"
	}
	features += "</stream:features>"
	hdr := ourHeader(from)
	s.Record(true, hdr)
	s.Record(true, features)
	if err := s.SendRaw([]byte(hdr+features), ""); err != nil {
		return 0, err
	}
	opened = true

	// One element decides: <starttls/>, the end of the stream, or (RFC
	// 6120 §5.3.1) anything else, which under Required ends the stream.
	s.SetPhase(dialog.PhaseStartTLS)
	s.ResetDeadline()
	e, err := x.Element()
	if err != nil {
		return readErr(err)
	}
	if e == nil {
		_ = s.SendRaw([]byte(Close), Close)
		return dialog.Quit, nil
	}
	s.Record(false, x.Raw())
	switch {
	case e.Is(NSTLS, "starttls"):
		serverSkipTrailingSpace(s.Reader())
		return dialog.StartTLS, nil
	case e.Is(NSStreams, "error"):
		return 0, s.Fail(fmt.Errorf("%w: client sent %s", dialog.ErrClosed, StreamError(e)), x.Raw())
	case s.Config().Optional:
		// The application takes the plaintext stream, starting with this stanza.
		s.SetPending(append([]byte(nil), x.Bytes()...))
		return dialog.Handoff, nil
	}
	return streamError("policy-violation", "STARTTLS is required",
		s.Fail(fmt.Errorf("%w: <%s> before STARTTLS (TLS required)", wire.ErrProtocol, NameString(e.Name)), x.Raw()))
}

// serverSkipTrailingSpace drops a line ending that arrived with <starttls/>
// (clients that end every write with a newline, as gnutls-cli does its
// stream header): XML whitespace is no stanza and cannot be executed. Only
// whitespace, and only when it is all that is buffered: anything else stays
// for the injection check.
func serverSkipTrailingSpace(r *wire.Reader) {
	n := r.Buffered()
	if n == 0 || n > 4 || !IsSpace(r.Pending()) {
		return
	}
	for i := 0; i < n; i++ {
		_, _ = r.ReadByte()
	}
}
