package starttls

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// SMTP (RFC 5321, STARTTLS RFC 3207), submission (RFC 6409, 8314) and LMTP
// (RFC 2033) share one dialogue; LMTP says LHLO where SMTP says EHLO.

// maxReplyLines bounds a multi-line reply; real EHLO replies have ~20.
const maxReplyLines = 512

func (s *clientSession) readSMTPReply() (smtp.Reply, error) {
	var r smtp.Reply
	for i := 0; i < maxReplyLines; i++ {
		line, err := s.readLine()
		if err != nil {
			return r, err
		}
		code, more, text, err := smtp.ParseLine(line)
		if err != nil {
			return r, s.fail(err, line)
		}
		if i > 0 && code != r.Code {
			return r, s.failf(ErrProtocol, line, "status code changed within a reply (%d then %d)", r.Code, code)
		}
		r.Code = code
		r.Lines = append(r.Lines, text)
		if !more {
			return r, nil
		}
	}
	return r, s.failf(ErrProtocol, "", "reply longer than %d lines", maxReplyLines)
}

func smtpClient(hello string) *clientHalf {
	ehlo := func(s *clientSession) error {
		if err := s.send(hello + " " + s.cfg.LocalName); err != nil {
			return err
		}
		r, err := s.readSMTPReply()
		if err != nil {
			return err
		}
		if r.Code != 250 {
			// No extended hello means no way to learn of STARTTLS (the
			// legacy-downgrade attack): there is nothing to negotiate.
			return s.failf(ErrNotOffered, r.String(), "%s refused", hello)
		}
		s.caps = Capabilities(r.Lines[1:])
		s.offered = s.caps.Has("STARTTLS")
		return nil
	}
	return &clientHalf{
		greet: func(s *clientSession) error {
			if err := s.greet220(s.readSMTPReply()); err != nil {
				return err
			}
			return ehlo(s)
		},
		upgrade: codeUpgrade("STARTTLS", 220, (*clientSession).readSMTPReply),
		requery: ehlo,
		quit: func(s *clientSession) error {
			if err := s.send("QUIT"); err != nil {
				return err
			}
			_, err := s.readSMTPReply()
			return err
		},
	}
}

type smtpServerState struct{ helloSeen bool }

func smtpServer(hello, kind string) *serverHalf {
	return &serverHalf{
		greet: func(s *serverSession) error {
			return s.send(fmt.Sprintf("220 %s %s ready; TLS available", s.cfg.Hostname, kind))
		},
		goAhead: func(s *serverSession) error { return s.send("220 2.0.0 Ready to start TLS") },
		command: func(s *serverSession, line string) (action, error) {
			st, _ := s.state.(*smtpServerState)
			if st == nil {
				st = &smtpServerState{}
				s.state = st
			}
			verb, arg, _ := strings.Cut(line, " ")
			verb = strings.ToUpper(verb)
			switch verb {
			case hello:
				if strings.TrimSpace(arg) == "" {
					return actContinue, s.send("501 5.5.4 Syntax: " + hello + " hostname")
				}
				st.helloSeen = true
				s.c.ClientName = strings.TrimSpace(arg)
				lines := []string{s.cfg.Hostname}
				lines = append(lines, s.cfg.advertised()...)
				lines = append(lines, "STARTTLS")
				return actContinue, s.send(smtp.Multiline(250, lines)...)
			case "HELO":
				if kind == "LMTP" {
					break
				}
				// HELO cannot carry STARTTLS; under Required the client must come back with EHLO.
				return actContinue, s.send("250 " + s.cfg.Hostname)
			case "STARTTLS":
				switch {
				case arg != "":
					return actContinue, s.send("501 5.5.4 Syntax error (no parameters allowed)")
				case !st.helloSeen:
					return actContinue, s.send("503 5.5.1 " + hello + " first")
				}
				return actStartTLS, nil
			case "NOOP":
				return actContinue, s.send("250 2.0.0 OK")
			case "RSET":
				return actContinue, s.send("250 2.0.0 OK")
			case "QUIT":
				return actQuit, s.send("221 2.0.0 Bye")
			}
			if s.cfg.Policy == Optional {
				return actHandoff, nil
			}
			switch verb {
			case "MAIL", "RCPT", "DATA", "BDAT", "AUTH", "VRFY", "EXPN", "ETRN", "TURN", "ATRN", "BURL":
				return actContinue, s.send("530 5.7.0 Must issue a STARTTLS command first")
			}
			return actContinue, s.send("502 5.5.2 Command not recognized")
		},
	}
}

// greet220 takes the greeting of a three-digit-code protocol (SMTP, FTP):
// only 220 lets the dialogue go on.
func (s *clientSession) greet220(r smtp.Reply, err error) error {
	if err != nil {
		return err
	}
	s.c.Greeting = strings.Join(r.Lines, "\n")
	if r.Code != 220 {
		return s.failf(ErrRefused, r.String(), "greeting is not 220")
	}
	s.phase = PhaseCaps
	return nil
}

// codeUpgrade sends the upgrade command of a three-digit-code protocol and
// takes only want as the go-ahead.
func codeUpgrade(cmd string, want int, read func(*clientSession) (smtp.Reply, error)) func(*clientSession) error {
	return func(s *clientSession) error {
		if err := s.send(cmd); err != nil {
			return err
		}
		r, err := read(s)
		if err != nil {
			return err
		}
		if r.Code != want {
			return s.failf(ErrRefused, r.String(), "server answered %d", r.Code)
		}
		return nil
	}
}
