package starttls

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/pop3"
)

// POP3 (RFC 1939, CAPA RFC 2449, STLS RFC 2595 §4) and pop3s (RFC 8314).

func (s *clientSession) readPOP3Status() (bool, string, error) {
	line, err := s.readLine()
	if err != nil {
		return false, "", err
	}
	ok, _, err := pop3.ParseStatus(line)
	if err != nil {
		return false, line, s.fail(err, line)
	}
	return ok, line, nil
}

// readPOP3Multi reads a dot-terminated multi-line body, undoing dot-stuffing.
func (s *clientSession) readPOP3Multi() ([]string, error) {
	var out []string
	for i := 0; i < maxReplyLines; i++ {
		line, err := s.readLine()
		if err != nil {
			return nil, err
		}
		if line == "." {
			return out, nil
		}
		out = append(out, strings.TrimPrefix(line, "."))
	}
	return nil, s.failf(ErrProtocol, "", "multi-line response longer than %d lines", maxReplyLines)
}

func pop3Capa(s *clientSession) error {
	if err := s.send("CAPA"); err != nil {
		return err
	}
	ok, line, err := s.readPOP3Status()
	if err != nil {
		return err
	}
	if !ok {
		// No CAPA means no way to learn of STLS.
		if s.inTLS {
			s.caps = nil
			return nil
		}
		return s.failf(ErrNotOffered, line, "CAPA refused")
	}
	caps, err := s.readPOP3Multi()
	if err != nil {
		return err
	}
	s.caps = Capabilities(caps)
	s.offered = s.caps.Has("STLS")
	return nil
}

func pop3Client() *clientHalf {
	return &clientHalf{
		greet: func(s *clientSession) error {
			ok, line, err := s.readPOP3Status()
			if err != nil {
				return err
			}
			s.c.Greeting = line
			if !ok {
				return s.failf(ErrRefused, line, "greeting is -ERR")
			}
			s.phase = PhaseCaps
			return pop3Capa(s)
		},
		upgrade: func(s *clientSession) error {
			if err := s.send("STLS"); err != nil {
				return err
			}
			ok, line, err := s.readPOP3Status()
			if err != nil {
				return err
			}
			if !ok {
				return s.failf(ErrRefused, line, "server answered -ERR")
			}
			return nil
		},
		requery: pop3Capa,
		quit: func(s *clientSession) error {
			if err := s.send("QUIT"); err != nil {
				return err
			}
			_, _, err := s.readPOP3Status()
			return err
		},
	}
}

func pop3Server() *serverHalf {
	return &serverHalf{
		greet: func(s *serverSession) error {
			return s.send(fmt.Sprintf("+OK %s POP3 ready", s.cfg.Hostname))
		},
		goAhead: func(s *serverSession) error { return s.send("+OK Begin TLS negotiation") },
		command: func(s *serverSession, line string) (action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "CAPA":
				lines := []string{"+OK Capability list follows"}
				lines = append(lines, s.cfg.advertised()...)
				lines = append(lines, "STLS", ".")
				return actContinue, s.send(lines...)
			case "STLS":
				if arg != "" {
					return actContinue, s.send("-ERR STLS takes no arguments")
				}
				return actStartTLS, nil
			case "QUIT":
				return actQuit, s.send("+OK Bye")
			}
			if s.cfg.Policy == Optional {
				return actHandoff, nil
			}
			switch strings.ToUpper(verb) {
			case "USER", "PASS", "APOP", "AUTH":
				return actContinue, s.send("-ERR [AUTH] Use STLS first")
			}
			return actContinue, s.send("-ERR Command not available before STLS")
		},
	}
}
