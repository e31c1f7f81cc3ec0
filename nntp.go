package starttls

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// NNTP (RFC 3977, STARTTLS RFC 4642) and implicit nntps (RFC 8143).

func (s *clientSession) readNNTPStatus() (int, string, error) {
	line, err := s.readLine()
	if err != nil {
		return 0, "", err
	}
	code, more, _, err := smtp.ParseCodeLine(line, 100)
	if err != nil || more {
		return 0, line, s.failf(ErrProtocol, line, "malformed status line")
	}
	return code, line, nil
}

// nntpCapabilities asks CAPABILITIES: "101 ...", lines, ".".
func nntpCapabilities(s *clientSession) error {
	if err := s.send("CAPABILITIES"); err != nil {
		return err
	}
	code, line, err := s.readNNTPStatus()
	if err != nil {
		return err
	}
	if code != 101 {
		if s.inTLS {
			s.caps = nil
			return nil
		}
		// Without CAPABILITIES there is no way to learn of STARTTLS.
		return s.failf(ErrNotOffered, line, "CAPABILITIES refused")
	}
	caps, err := s.readPOP3Multi() // the same dot-terminated block
	if err != nil {
		return err
	}
	s.caps = Capabilities(caps)
	s.offered = s.caps.Has("STARTTLS")
	return nil
}

func nntpClient() *clientHalf {
	return &clientHalf{
		greet: func(s *clientSession) error {
			code, line, err := s.readNNTPStatus()
			if err != nil {
				return err
			}
			s.c.Greeting = line
			if code != 200 && code != 201 {
				return s.failf(ErrRefused, line, "greeting is not 200/201")
			}
			s.phase = PhaseCaps
			return nntpCapabilities(s)
		},
		upgrade: func(s *clientSession) error {
			if err := s.send("STARTTLS"); err != nil {
				return err
			}
			code, line, err := s.readNNTPStatus()
			if err != nil {
				return err
			}
			if code != 382 {
				return s.failf(ErrRefused, line, "server answered %d", code)
			}
			return nil
		},
		requery: nntpCapabilities,
		quit: func(s *clientSession) error {
			if err := s.send("QUIT"); err != nil {
				return err
			}
			_, _, err := s.readNNTPStatus()
			return err
		},
	}
}

func nntpServer() *serverHalf {
	return &serverHalf{
		greet: func(s *serverSession) error {
			return s.send(fmt.Sprintf("200 %s NNTP ready; STARTTLS available", s.cfg.Hostname))
		},
		goAhead: func(s *serverSession) error { return s.send("382 Continue with TLS negotiation") },
		command: func(s *serverSession, line string) (action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "CAPABILITIES":
				lines := []string{"101 Capability list:", "VERSION 2", "READER", "STARTTLS"}
				lines = append(lines, s.cfg.advertised()...)
				return actContinue, s.send(append(lines, ".")...)
			case "STARTTLS":
				if arg != "" {
					return actContinue, s.send("501 STARTTLS takes no arguments")
				}
				return actStartTLS, nil
			case "DATE":
				return actContinue, s.send("111 " + s.start.UTC().Format("20060102150405"))
			case "QUIT":
				return actQuit, s.send("205 Bye")
			}
			if s.cfg.Policy == Optional {
				return actHandoff, nil
			}
			// RFC 4642 §2.2.2: 483 means "use STARTTLS first".
			return actContinue, s.send("483 Encryption required: use STARTTLS first")
		},
	}
}
