package starttls

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/imap"
)

// IMAP (RFC 3501/9051, STARTTLS RFC 2595 §3) and imaps (RFC 8314).

// capsFromText extracts "CAPABILITY a b c" from an untagged response or a
// [CAPABILITY ...] response code.
func imapCaps(text string) Capabilities {
	if strings.HasPrefix(text, "[") {
		end := strings.IndexByte(text, ']')
		if end < 0 {
			return nil
		}
		text = text[1:end]
		kw, rest, _ := strings.Cut(text, " ")
		if !strings.EqualFold(kw, "CAPABILITY") {
			return nil
		}
		text = rest
	}
	return Capabilities(strings.Fields(text))
}

// readIMAP reads responses until the tagged completion of tag, handing each
// untagged one to onUntagged. Literals inside untagged responses are read
// (bounded by the reader's budget) and dropped.
func (s *clientSession) readIMAP(tag string, onUntagged func(imap.Response)) (imap.Response, error) {
	for i := 0; i < 10000; i++ {
		line, err := s.readLine()
		if err != nil {
			return imap.Response{}, err
		}
		// A literal's bytes and the rest of its line belong to the same
		// response; they are read (within the budget) and left out.
		for j := 0; j < 100; j++ {
			n, ok := imap.Literal(line)
			if !ok {
				break
			}
			if n > s.cfg.MaxPreTLSBytes {
				return imap.Response{}, s.failf(ErrTooMuchData, line, "literal of %d bytes", n)
			}
			if err := s.readFull(make([]byte, n)); err != nil {
				return imap.Response{}, err
			}
			more, err := s.readLine()
			if err != nil {
				return imap.Response{}, err
			}
			line = line[:strings.LastIndexByte(line, '{')] + "{...}" + more
		}
		r, err := imap.ParseResponse(line)
		if err != nil {
			return r, s.fail(err, line)
		}
		switch r.Tag {
		case tag:
			return r, nil
		case "*":
			if onUntagged != nil {
				onUntagged(r)
			}
		case "+":
			return r, s.failf(ErrProtocol, line, "unexpected continuation request")
		default:
			return r, s.failf(ErrProtocol, line, "response for a tag never sent (want %s)", tag)
		}
	}
	return imap.Response{}, s.failf(ErrProtocol, "", "too many responses")
}

func (s *clientSession) nextTag() string {
	s.tag++
	return "a" + strconv.Itoa(s.tag)
}

func imapCapability(s *clientSession) error {
	tag := s.nextTag()
	if err := s.send(tag + " CAPABILITY"); err != nil {
		return err
	}
	var caps Capabilities
	r, err := s.readIMAP(tag, func(u imap.Response) {
		// Any other untagged data before TLS (LIST, EXISTS, FETCH ...) is
		// dropped: nothing from before TLS may shape the session.
		if u.Status == "CAPABILITY" {
			caps = append(caps, imapCaps(u.Text)...)
		}
	})
	if err != nil {
		return err
	}
	if r.Status != "OK" {
		if s.inTLS {
			return s.failf(ErrProtocol, r.Status+" "+r.Text, "CAPABILITY failed")
		}
		return s.failf(ErrNotOffered, r.Status+" "+r.Text, "CAPABILITY failed")
	}
	s.caps = caps
	s.offered = caps.Has("STARTTLS")
	return nil
}

func imapClient() *clientHalf {
	return &clientHalf{
		greet: func(s *clientSession) error {
			line, err := s.readLine()
			if err != nil {
				return err
			}
			s.c.Greeting = line
			r, err := imap.ParseResponse(line)
			if err != nil || r.Tag != "*" {
				return s.failf(ErrProtocol, line, "malformed greeting")
			}
			switch r.Status {
			case "OK":
			case "PREAUTH":
				if !s.inTLS {
					return s.fail(ErrPreauth, line)
				}
			case "BYE":
				return s.failf(ErrRefused, line, "server said BYE")
			default:
				return s.failf(ErrProtocol, line, "malformed greeting")
			}
			s.phase = PhaseCaps
			return imapCapability(s)
		},
		upgrade: func(s *clientSession) error {
			tag := s.nextTag()
			if err := s.send(tag + " STARTTLS"); err != nil {
				return err
			}
			r, err := s.readIMAP(tag, nil)
			if err != nil {
				return err
			}
			if r.Status != "OK" {
				return s.failf(ErrRefused, r.Status+" "+r.Text, "server answered %s", r.Status)
			}
			return nil
		},
		requery: imapCapability,
		quit: func(s *clientSession) error {
			tag := s.nextTag()
			if err := s.send(tag + " LOGOUT"); err != nil {
				return err
			}
			_, err := s.readIMAP(tag, nil)
			return err
		},
	}
}

func imapServer() *serverHalf {
	caps := func(s *serverSession) string {
		c := []string{"IMAP4rev1", "STARTTLS"}
		if s.cfg.Policy == Required {
			c = append(c, "LOGINDISABLED")
		}
		return strings.Join(append(c, s.cfg.advertised()...), " ")
	}
	return &serverHalf{
		greet: func(s *serverSession) error {
			return s.send(fmt.Sprintf("* OK [CAPABILITY %s] %s IMAP4rev1 ready", caps(s), s.cfg.Hostname))
		},
		goAhead: func(s *serverSession) error { return s.send(s.tag + " OK Begin TLS negotiation now") },
		command: func(s *serverSession, line string) (action, error) {
			tag, rest, _ := strings.Cut(line, " ")
			if tag == "" || !imap.TagOK(tag) || tag == "*" {
				return actContinue, s.send("* BAD Malformed command")
			}
			verb, arg, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(verb) {
			case "CAPABILITY":
				return actContinue, s.send("* CAPABILITY "+caps(s), tag+" OK CAPABILITY completed")
			case "NOOP":
				return actContinue, s.send(tag + " OK NOOP completed")
			case "LOGOUT":
				return actQuit, s.send("* BYE Logging out", tag+" OK LOGOUT completed")
			case "STARTTLS":
				if arg != "" {
					return actContinue, s.send(tag + " BAD STARTTLS takes no arguments")
				}
				s.tag = tag
				return actStartTLS, nil
			}
			if s.cfg.Policy == Optional {
				return actHandoff, nil
			}
			switch strings.ToUpper(verb) {
			case "LOGIN", "AUTHENTICATE":
				return actContinue, s.send(tag + " NO [PRIVACYREQUIRED] Use STARTTLS first")
			}
			return actContinue, s.send(tag + " BAD [PRIVACYREQUIRED] Command not available before STARTTLS")
		},
	}
}
