package starttls

import (
	"fmt"
	"strings"
)

// IRC with the IRCv3 "tls" extension (STARTTLS → 670 RPL_STARTTLS, 691
// ERR_STARTTLS) and implicit ircs.

// ircMessage is the part of an IRC line the dialogue needs.
type ircMessage struct {
	Command string   // upper-cased command or three-digit numeric
	Params  []string // the trailing parameter, if any, is last
}

// readIRC reads and parses one line from the server.
func (s *clientSession) readIRC() (string, ircMessage, error) {
	line, err := s.readLine()
	if err != nil {
		return "", ircMessage{}, err
	}
	m, err := parseIRC(line)
	if err != nil {
		return line, ircMessage{}, s.fail(err, line)
	}
	return line, m, nil
}

func parseIRC(line string) (ircMessage, error) {
	var m ircMessage
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
		return m, fmt.Errorf("%w: IRC line without a command: %q", ErrProtocol, line)
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

// ircMaxSkipped bounds the notices a server may send around the dialogue.
const ircMaxSkipped = 100

// ircCapsSentinel follows CAP LS: every server answers a PING before
// registration (PONG, or 451 "not registered"), while a server without CAP
// may ignore CAP without a word (InspIRCd does).
const ircCapsSentinel = "starttls-caps-end"

// ircCaps asks CAP LS 302 followed by the sentinel PING and reads up to the
// sentinel's answer; the (possibly multi-line) CAP LS answer, if any, comes
// before it. A server without CAP (421, 451 or silence) can only be tried
// with STARTTLS.
func ircCaps(s *clientSession) error {
	if err := s.send("CAP LS 302"); err != nil {
		return err
	}
	if err := s.send("PING :" + ircCapsSentinel); err != nil {
		return err
	}
	var caps Capabilities
	capAnswered, capWorks := false, false
	for i := 0; i < ircMaxSkipped; i++ {
		line, m, err := s.readIRC()
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
		case m.Command == "PONG" && len(m.Params) > 0 && m.Params[len(m.Params)-1] == ircCapsSentinel,
			errFor == "PING", errFor == "?" && capAnswered:
			if capWorks {
				// CAP works: only a listed "tls" offers STARTTLS.
				s.caps, s.offered = caps, caps.Has("tls")
			} else {
				s.caps, s.offered = nil, true
			}
			return nil
		case errFor != "":
			capAnswered = true // CAP unknown or refused
			continue
		case m.Command == "670" || m.Command == "691":
			return s.failf(ErrInjection, line, "%s before the STARTTLS command was sent", m.Command)
		case m.Command == "ERROR":
			return s.failf(ErrRefused, line, "server closed the link")
		}
		// NOTICE AUTH and the like: skipped.
	}
	return s.failf(ErrProtocol, "", "no answer to CAP LS and PING within %d lines", ircMaxSkipped)
}

func ircClient() *clientHalf {
	return &clientHalf{
		greet: func(s *clientSession) error {
			s.phase = PhaseCaps
			return ircCaps(s)
		},
		upgrade: func(s *clientSession) error {
			// The server may have said more since its answer to the PING
			// (a notice on its hostname lookup, say): that is IRC, not
			// injection, unless it is the answer to a STARTTLS not yet sent.
			for i := 0; s.r.Buffered() > 0; i++ {
				if i == ircMaxSkipped {
					return s.failf(ErrProtocol, "", "more than %d unsolicited lines", ircMaxSkipped)
				}
				line, m, err := s.readIRC()
				if err != nil {
					return err
				}
				switch m.Command {
				case "670", "691":
					return s.failf(ErrInjection, line, "%s before the STARTTLS command was sent", m.Command)
				case "ERROR":
					return s.failf(ErrRefused, line, "server closed the link")
				}
			}
			if err := s.send("STARTTLS"); err != nil {
				return err
			}
			for i := 0; i < ircMaxSkipped; i++ {
				line, m, err := s.readIRC()
				if err != nil {
					return err
				}
				switch m.Command {
				case "670":
					return nil
				case "691", "421", "451", "ERROR":
					return s.failf(ErrRefused, line, "server answered %s", m.Command)
				}
			}
			return s.failf(ErrProtocol, "", "no answer to STARTTLS within %d lines", ircMaxSkipped)
		},
		requery: func(s *clientSession) error {
			if s.c.CapabilitiesBefore == nil {
				return nil // no CAP support seen before TLS
			}
			return ircCaps(s)
		},
		quit: func(s *clientSession) error {
			return s.send("QUIT :bye")
		},
		unsolicited: true,
	}
}

func ircServer() *serverHalf {
	return &serverHalf{
		// No greeting: IRC clients speak first, and a NOTICE before the
		// 670 makes openssl s_client -starttls irc give up.
		goAhead: func(s *serverSession) error {
			return s.send(":" + s.cfg.Hostname + " 670 * :STARTTLS successful, proceed with TLS handshake")
		},
		command: func(s *serverSession, line string) (action, error) {
			m, err := parseIRC(line)
			if err != nil {
				return actContinue, s.send(":" + s.cfg.Hostname + " 421 * :Unknown command")
			}
			h := ":" + s.cfg.Hostname
			switch m.Command {
			case "CAP":
				if len(m.Params) > 0 && strings.EqualFold(m.Params[0], "LS") {
					return actContinue, s.send(h + " CAP * LS :tls")
				}
				if len(m.Params) > 0 && strings.EqualFold(m.Params[0], "END") {
					return actContinue, nil
				}
				return actContinue, s.send(h + " CAP * NAK :" + strings.Join(m.Params[min(1, len(m.Params)):], " "))
			case "STARTTLS":
				return actStartTLS, nil
			case "PING":
				return actContinue, s.send(h + " PONG " + s.cfg.Hostname + " :" + strings.Join(m.Params, " "))
			case "QUIT":
				return actQuit, s.send("ERROR :Closing link")
			}
			if s.cfg.Policy == Optional {
				return actHandoff, nil
			}
			return actContinue, s.send(h + " 451 * " + m.Command + " :TLS required: send STARTTLS first")
		},
	}
}
