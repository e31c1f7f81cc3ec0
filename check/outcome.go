package check

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/starttls-go/starttls"
)

// outcome records why the main session failed: the dialogue seen up to
// the failure (so that a report shows what the server said) and a finding
// for every status but success, so that no failed check reads as clean.
func (c *run) outcome(err error) {
	r := c.r
	r.Status = starttls.StatusOf(err)
	r.Error = err.Error()
	pe := &starttls.ProtocolError{}
	if !errors.As(err, &pe) {
		pe = &starttls.ProtocolError{Err: err}
	}
	r.StartTLS.Greeting = storable(pe.Greeting)
	r.StartTLS.CapabilitiesBefore = nonNil(pe.CapabilitiesBefore)
	for _, e := range pe.Transcript {
		e.Text = storable(e.Text)
		r.StartTLS.Transcript = append(r.StartTLS.Transcript, e)
	}
	quoted := fmt.Sprintf("%q", pe.Reply)
	if pe.Reply == "" {
		quoted = "nothing"
	}
	switch r.Status {
	case starttls.StatusNotOffered:
		c.add(newFinding("starttls-not-offered", "the server's capabilities do not include the upgrade: "+firstNonEmpty(pe.Reply, err.Error())))
	case starttls.StatusPreauth:
		// PREAUTH starts the session authenticated in plaintext, where
		// STARTTLS is no longer allowed (RFC 3501 §6.2.1).
		c.add(newFinding("starttls-not-offered", "the IMAP server greeted with PREAUTH, which makes STARTTLS impossible: "+firstNonEmpty(pe.Greeting, pe.Reply)))
	case starttls.StatusRefused:
		r.StartTLS.Offered = true
		c.add(newFinding("starttls-refused", "the server answered "+quoted))
	case starttls.StatusInjection:
		r.StartTLS.Offered = true
		c.add(newFinding("response-injection", "bytes after the go-ahead: "+quoted))
	case starttls.StatusHandshake, starttls.StatusCertificate:
		r.StartTLS.Offered = true
		c.add(newFinding("handshake-failed", err.Error()))
	case starttls.StatusConnectRefused, starttls.StatusConnectTimeout:
		c.add(newFinding("connect-failed", err.Error()))
	default:
		c.add(c.dialogueFailure(pe, err))
	}
}

// dialogueFailure is the finding for a server that was reached but whose
// dialogue broke: silent, stalled, malformed or hung up.
func (c *run) dialogueFailure(pe *starttls.ProtocolError, err error) Finding {
	where := fmt.Sprintf("in the %s phase", pe.Phase)
	if pe.Phase == starttls.PhaseHandshake {
		// A stall or hang-up in the handshake is still the TLS offer going
		// unanswered: the server took the upgrade request.
		c.r.StartTLS.Offered = true
	}
	silent := pe.Received == 0 && pe.Phase == starttls.PhaseGreeting && !c.info.Implicit
	timeout := errors.Is(err, starttls.ErrTimeout)
	closed := errors.Is(err, starttls.ErrClosed)
	switch {
	case pe.Phase == starttls.PhaseConnect:
		return newFinding("connect-failed", err.Error())
	case silent && timeout:
		return newFinding("no-greeting", fmt.Sprintf("the connection was accepted but not one byte came within %s", c.o.Timeout))
	case silent && closed:
		return newFinding("no-greeting", "the connection was accepted and closed without a byte")
	case timeout:
		return newFinding("timeout", fmt.Sprintf("no complete answer within %s %s, after %d bytes (%d lines exchanged): %v", c.o.Timeout, where, pe.Received, len(pe.Transcript), pe.Err))
	case closed:
		return newFinding("connection-closed", fmt.Sprintf("closed %s after %d lines exchanged: %v", where, len(pe.Transcript), pe.Err))
	}
	ev := fmt.Sprintf("%s: %v", where, pe.Err)
	if pe.Reply != "" {
		ev += fmt.Sprintf(" (the server said %q)", pe.Reply)
	}
	return newFinding("protocol-error", ev)
}

// storable escapes what a failed dialogue may hold and a report store
// cannot: NUL and other control bytes (PostgreSQL's jsonb refuses \u0000)
// and invalid UTF-8 become \xNN. Line breaks and tabs stay.
func storable(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t' && c != '\r' && c != '\n') || c >= 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1, r < 0x20 && r != '\t' && r != '\r' && r != '\n', r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
