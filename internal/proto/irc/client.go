package irc

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// IRC with the IRCv3 "tls" extension (STARTTLS → 670 RPL_STARTTLS, 691
// ERR_STARTTLS) and implicit ircs.

// clientMessage is the part of an IRC line the dialogue needs.
type clientMessage struct {
	Command string   // upper-cased command or three-digit numeric
	Params  []string // the trailing parameter, if any, is last
}

// clientRead reads and parses one line from the server.
func clientRead(s dialog.Client) (string, clientMessage, error) {
	line, err := s.ReadLine()
	if err != nil {
		return "", clientMessage{}, err
	}
	m, err := clientParse(line)
	if err != nil {
		return line, clientMessage{}, s.Fail(err, line)
	}
	return line, m, nil
}

func clientParse(line string) (clientMessage, error) {
	var m clientMessage
	rest := line
	if strings.HasPrefix(rest, "@") { // IRCv3 message tags
		_, rest, _ = strings.Cut(rest, " ")
	}
	if strings.HasPrefix(rest, ":") { // source
		_, rest, _ = strings.Cut(rest, " ")
	}
	rest = strings.TrimLeft(rest, " ")
	cmd, rest, _ := strings.Cut(rest, " ")
	if cmd == "" {
		return m, fmt.Errorf("%w: IRC line without a command: %q", dialog.ErrProtocol, line)
	}
	m.Command = strings.ToUpper(cmd)
	for i := 0; rest != "" && i < 32; i++ {
		if strings.HasPrefix(rest, ":") {
			m.Params = append(m.Params, rest[1:])
			break
		}
		var p string
		p, rest, _ = strings.Cut(rest, " ")
		if p != "" {
			m.Params = append(m.Params, p)
		}
	}
	return m, nil
}

// clientMaxSkipped bounds the notices a server may send around the dialogue.
const clientMaxSkipped = 100

// clientCapsSentinel follows CAP LS: every server answers a PING before
// registration (PONG, or 451 "not registered"), while a server without CAP
// may ignore CAP without a word (InspIRCd does).
const clientCapsSentinel = "starttls-caps-end"

// clientCaps asks CAP LS 302 followed by the sentinel PING and reads up to the
// sentinel's answer; the (possibly multi-line) CAP LS answer, if any, comes
// before it. A server without CAP (421, 451 or silence) can only be tried
// with STARTTLS.
func clientCaps(s dialog.Client) error {
	if err := s.Send("CAP LS 302"); err != nil {
		return err
	}
	if err := s.Send("PING :" + clientCapsSentinel); err != nil {
		return err
	}
	var caps dialog.Capabilities
	capAnswered, capWorks := false, false
	for i := 0; i < clientMaxSkipped; i++ {
		line, m, err := clientRead(s)
		if err != nil {
			return err
		}
		// The answers come in order: CAP's, then PING's. An error numeric
		// names its command ("451 * PING :...") or not (ngIRCd's "451 *
		// :Connection not registered"); an anonymous one is CAP's unless
		// CAP was answered already.
		errFor := ""
		if (m.Command == "421" || m.Command == "451") && len(m.Params) >= 1 {
			errFor = "?"
			if len(m.Params) >= 3 {
				errFor = strings.ToUpper(m.Params[1])
			}
		}
		switch {
		case m.Command == "CAP" && len(m.Params) >= 3 && strings.EqualFold(m.Params[1], "LS"):
			caps = append(caps, strings.Fields(m.Params[len(m.Params)-1])...)
			if !(len(m.Params) == 4 && m.Params[2] == "*") { // the last line
				capAnswered, capWorks = true, true
			}
			continue
		case m.Command == "PONG" && len(m.Params) > 0 && m.Params[len(m.Params)-1] == clientCapsSentinel,
			errFor == "PING", errFor == "?" && capAnswered:
			if capWorks {
				// CAP works: only a listed "tls" offers STARTTLS.
				s.SetCaps(caps, caps.Has("tls"))
			} else {
				s.SetCaps(nil, true)
			}
			return nil
		case errFor != "":
			capAnswered = true // CAP unknown or refused
			continue
		case m.Command == "670" || m.Command == "691":
			return s.Failf(dialog.ErrInjection, line, "%s before the STARTTLS command was sent", m.Command)
		case m.Command == "ERROR":
			return s.Failf(dialog.ErrRefused, line, "server closed the link")
		}
		// NOTICE AUTH and the like: skipped.
	}
	return s.Failf(dialog.ErrProtocol, "", "no answer to CAP LS and PING within %d lines", clientMaxSkipped)
}

// clientHalf is IRC's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			s.SetPhase(dialog.PhaseCaps)
			return clientCaps(s)
		},
		Upgrade: func(s dialog.Client) error {
			// The server may have said more since its answer to the PING
			// (a notice on its hostname lookup, say): that is IRC, not
			// injection, unless it is the answer to a STARTTLS not yet sent.
			for i := 0; s.Reader().Buffered() > 0; i++ {
				if i == clientMaxSkipped {
					return s.Failf(dialog.ErrProtocol, "", "more than %d unsolicited lines", clientMaxSkipped)
				}
				line, m, err := clientRead(s)
				if err != nil {
					return err
				}
				switch m.Command {
				case "670", "691":
					return s.Failf(dialog.ErrInjection, line, "%s before the STARTTLS command was sent", m.Command)
				case "ERROR":
					return s.Failf(dialog.ErrRefused, line, "server closed the link")
				}
			}
			if err := s.Send("STARTTLS"); err != nil {
				return err
			}
			for i := 0; i < clientMaxSkipped; i++ {
				line, m, err := clientRead(s)
				if err != nil {
					return err
				}
				switch m.Command {
				case "670":
					return nil
				case "691", "421", "451", "ERROR":
					return s.Failf(dialog.ErrRefused, line, "server answered %s", m.Command)
				}
			}
			return s.Failf(dialog.ErrProtocol, "", "no answer to STARTTLS within %d lines", clientMaxSkipped)
		},
		Requery: func(s dialog.Client) error {
			if s.CapabilitiesBefore() == nil {
				return nil // no CAP support seen before TLS
			}
			return clientCaps(s)
		},
		Quit: func(s dialog.Client) error {
			return s.Send("QUIT :bye")
		},
		Unsolicited: true,
	}
}
