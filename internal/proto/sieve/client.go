package sieve

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// ManageSieve (RFC 5804): the greeting is the capability list; after TLS
// the server sends it again unasked (§2.2).

// clientStrings splits a line of quoted strings and atoms: `"SASL" "PLAIN"`
// → [SASL PLAIN]. Literals are not used in capability lists by real servers
// and are refused.
func clientStrings(line string) ([]string, error) {
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
				return nil, fmt.Errorf("%w: unterminated string in %q", dialog.ErrProtocol, line)
			}
			out = append(out, b.String())
			i = j + 1
		case c == '{':
			return nil, fmt.Errorf("%w: literal in %q", dialog.ErrProtocol, line)
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

// clientReadCaps reads capability lines up to the OK that ends them.
func clientReadCaps(s dialog.Client) (dialog.Capabilities, string, error) {
	var caps dialog.Capabilities
	for i := 0; i < dialog.MaxReplyLines; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return nil, "", err
		}
		if status, ok := clientStatus(line); ok {
			if status != "OK" {
				return caps, line, s.Failf(dialog.ErrRefused, line, "server answered %s", status)
			}
			return caps, line, nil
		}
		f, err := clientStrings(line)
		if err != nil || len(f) == 0 || !strings.HasPrefix(line, `"`) {
			return nil, line, s.Failf(dialog.ErrProtocol, line, "malformed capability line")
		}
		caps = append(caps, strings.Join(f, " "))
	}
	return nil, "", s.Failf(dialog.ErrProtocol, "", "capability list longer than %d lines", dialog.MaxReplyLines)
}

// clientStatus recognises a response line: OK, NO or BYE, then a space,
// a response code or a string.
func clientStatus(line string) (string, bool) {
	word, _, _ := strings.Cut(line, " ")
	switch w := strings.ToUpper(word); w {
	case "OK", "NO", "BYE":
		return w, true
	}
	return "", false
}

// clientHalf is ManageSieve's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	caps := func(s dialog.Client) error {
		c, _, err := clientReadCaps(s)
		if err != nil {
			return err
		}
		s.SetCaps(c, c.Has("STARTTLS"))
		return nil
	}
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			s.SetPhase(dialog.PhaseCaps)
			c, _, err := clientReadCaps(s)
			if err != nil {
				return err
			}
			s.SetCaps(c, c.Has("STARTTLS"))
			s.SetGreeting(strings.Join(c, "\n"))
			return nil
		},
		Upgrade: func(s dialog.Client) error {
			if err := s.Send("STARTTLS"); err != nil {
				return err
			}
			line, err := s.ReadLine()
			if err != nil {
				return err
			}
			status, ok := clientStatus(line)
			switch {
			case !ok:
				return s.Failf(dialog.ErrProtocol, line, "malformed response")
			case status != "OK":
				return s.Failf(dialog.ErrRefused, line, "server answered %s", status)
			}
			return nil
		},
		// The server re-sends its capabilities inside TLS without being asked.
		Requery: caps,
		Quit: func(s dialog.Client) error {
			if err := s.Send("LOGOUT"); err != nil {
				return err
			}
			_, err := s.ReadLine()
			return err
		},
	}
}
