package starttls

import (
	"fmt"
	"strconv"
	"strings"
)

// ManageSieve (RFC 5804): the greeting is the capability list; after TLS
// the server sends it again unasked (§2.2).

// sieveStrings splits a line of quoted strings and atoms: `"SASL" "PLAIN"`
// → [SASL PLAIN]. Literals are not used in capability lists by real servers
// and are refused.
func sieveStrings(line string) ([]string, error) {
	var out []string
	for i := 0; i < len(line); {
		switch c := line[i]; {
		case c == ' ':
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
				b.WriteByte(line[j])
			}
			if j >= len(line) {
				return nil, fmt.Errorf("%w: unterminated string in %q", ErrProtocol, line)
			}
			out = append(out, b.String())
			i = j + 1
		case c == '{':
			return nil, fmt.Errorf("%w: literal in %q", ErrProtocol, line)
		default:
			j := strings.IndexByte(line[i:], ' ')
			if j < 0 {
				j = len(line) - i
			}
			out = append(out, line[i:i+j])
			i += j
		}
	}
	return out, nil
}

// readSieveCaps reads capability lines up to the OK that ends them.
func (s *clientSession) readSieveCaps() (Capabilities, string, error) {
	var caps Capabilities
	for i := 0; i < maxReplyLines; i++ {
		line, err := s.readLine()
		if err != nil {
			return nil, "", err
		}
		if status, ok := sieveStatus(line); ok {
			if status != "OK" {
				return caps, line, s.failf(ErrRefused, line, "server answered %s", status)
			}
			return caps, line, nil
		}
		f, err := sieveStrings(line)
		if err != nil || len(f) == 0 || !strings.HasPrefix(line, `"`) {
			return nil, line, s.failf(ErrProtocol, line, "malformed capability line")
		}
		caps = append(caps, strings.Join(f, " "))
	}
	return nil, "", s.failf(ErrProtocol, "", "capability list longer than %d lines", maxReplyLines)
}

// sieveStatus recognises a response line: OK, NO or BYE, then a space,
// a response code or a string.
func sieveStatus(line string) (string, bool) {
	word, _, _ := strings.Cut(line, " ")
	switch w := strings.ToUpper(word); w {
	case "OK", "NO", "BYE":
		return w, true
	}
	return "", false
}

func sieveClient() *clientHalf {
	caps := func(s *clientSession) error {
		c, _, err := s.readSieveCaps()
		if err != nil {
			return err
		}
		s.caps = c
		s.offered = c.Has("STARTTLS")
		return nil
	}
	return &clientHalf{
		greet: func(s *clientSession) error {
			s.phase = PhaseCaps
			if err := caps(s); err != nil {
				return err
			}
			s.c.Greeting = strings.Join(s.caps, "\n")
			return nil
		},
		upgrade: func(s *clientSession) error {
			if err := s.send("STARTTLS"); err != nil {
				return err
			}
			line, err := s.readLine()
			if err != nil {
				return err
			}
			status, ok := sieveStatus(line)
			switch {
			case !ok:
				return s.failf(ErrProtocol, line, "malformed response")
			case status != "OK":
				return s.failf(ErrRefused, line, "server answered %s", status)
			}
			return nil
		},
		// The server re-sends its capabilities inside TLS without being asked.
		requery: caps,
		quit: func(s *clientSession) error {
			if err := s.send("LOGOUT"); err != nil {
				return err
			}
			_, err := s.readLine()
			return err
		},
	}
}

func sieveServer() *serverHalf {
	capLines := func(s *serverSession, inTLS bool) []string {
		lines := []string{`"IMPLEMENTATION" "starttls-go"`, `"SIEVE" "fileinto vacation"`}
		extra := s.cfg.advertised()
		if inTLS {
			extra = s.cfg.Capabilities
		}
		for _, e := range extra {
			name, val, _ := strings.Cut(e, " ")
			l := strconv.Quote(strings.ToUpper(name))
			if val != "" {
				l += " " + strconv.Quote(val)
			}
			lines = append(lines, l)
		}
		if !inTLS {
			lines = append(lines, `"STARTTLS"`)
		}
		return append(lines, `"VERSION" "1.0"`, `OK "ManageSieve ready"`)
	}
	return &serverHalf{
		greet:    func(s *serverSession) error { return s.send(capLines(s, false)...) },
		goAhead:  func(s *serverSession) error { return s.send(`OK "Begin TLS negotiation now"`) },
		afterTLS: func(s *serverSession) error { return s.send(capLines(s, true)...) },
		command: func(s *serverSession, line string) (action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "CAPABILITY":
				return actContinue, s.send(capLines(s, false)...)
			case "STARTTLS":
				if arg != "" {
					return actContinue, s.send(`NO "STARTTLS takes no arguments"`)
				}
				return actStartTLS, nil
			case "NOOP":
				return actContinue, s.send(`OK "NOOP completed"`)
			case "LOGOUT":
				return actQuit, s.send(`OK "Logout completed"`)
			}
			if s.cfg.Policy == Optional {
				return actHandoff, nil
			}
			return actContinue, s.send(`NO (ENCRYPT-NEEDED) "Use STARTTLS first"`)
		},
	}
}
