package imap

import (
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// IMAP (RFC 3501/9051, STARTTLS RFC 2595 §3) and imaps (RFC 8314).

// clientCaps extracts "CAPABILITY a b c" from an untagged response or a
// [CAPABILITY ...] response code.
func clientCaps(text string) dialog.Capabilities {
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
	return dialog.Capabilities(strings.Fields(text))
}

// clientRead reads responses until the tagged completion of tag, handing each
// untagged one to onUntagged. Literals inside untagged responses are read
// (bounded by the reader's budget) and dropped.
func clientRead(s dialog.Client, tag string, onUntagged func(Response)) (Response, error) {
	for i := 0; i < 10000; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return Response{}, err
		}
		// A literal's bytes and the rest of its line belong to the same
		// response; they are read (within the budget) and left out.
		for j := 0; j < 100; j++ {
			n, ok := Literal(line)
			if !ok {
				break
			}
			if n > s.Config().MaxPreTLSBytes {
				return Response{}, s.Failf(dialog.ErrTooMuchData, line, "literal of %d bytes", n)
			}
			if err := s.ReadFull(make([]byte, n)); err != nil {
				return Response{}, err
			}
			more, err := s.ReadLine()
			if err != nil {
				return Response{}, err
			}
			line = line[:strings.LastIndexByte(line, '{')] + "{...}" + more
		}
		r, err := ParseResponse(line)
		if err != nil {
			return r, s.Fail(err, line)
		}
		switch r.Tag {
		case tag:
			return r, nil
		case "*":
			if onUntagged != nil {
				onUntagged(r)
			}
		case "+":
			return r, s.Failf(dialog.ErrProtocol, line, "unexpected continuation request")
		default:
			return r, s.Failf(dialog.ErrProtocol, line, "response for a tag never sent (want %s)", tag)
		}
	}
	return Response{}, s.Failf(dialog.ErrProtocol, "", "too many responses")
}

// clientTag names the session's next command.
func clientTag(s dialog.Client) string { return "a" + strconv.Itoa(s.NextTag()) }

func clientCapability(s dialog.Client) error {
	tag := clientTag(s)
	if err := s.Send(tag + " CAPABILITY"); err != nil {
		return err
	}
	var caps dialog.Capabilities
	r, err := clientRead(s, tag, func(u Response) {
		// Any other untagged data before TLS (LIST, EXISTS, FETCH ...) is
		// dropped: nothing from before TLS may shape the session.
		if u.Status == "CAPABILITY" {
			caps = append(caps, clientCaps(u.Text)...)
		}
	})
	if err != nil {
		return err
	}
	if r.Status != "OK" {
		if s.InTLS() {
			return s.Failf(dialog.ErrProtocol, r.Status+" "+r.Text, "CAPABILITY failed")
		}
		return s.Failf(dialog.ErrNotOffered, r.Status+" "+r.Text, "CAPABILITY failed")
	}
	s.SetCaps(caps, caps.Has("STARTTLS"))
	return nil
}

// clientHalf is IMAP's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			line, err := s.ReadLine()
			if err != nil {
				return err
			}
			s.SetGreeting(line)
			r, err := ParseResponse(line)
			if err != nil || r.Tag != "*" {
				return s.Failf(dialog.ErrProtocol, line, "malformed greeting")
			}
			switch r.Status {
			case "OK":
			case "PREAUTH":
				if !s.InTLS() {
					return s.Fail(dialog.ErrPreauth, line)
				}
			case "BYE":
				return s.Failf(dialog.ErrRefused, line, "server said BYE")
			default:
				return s.Failf(dialog.ErrProtocol, line, "malformed greeting")
			}
			s.SetPhase(dialog.PhaseCaps)
			return clientCapability(s)
		},
		Upgrade: func(s dialog.Client) error {
			tag := clientTag(s)
			if err := s.Send(tag + " STARTTLS"); err != nil {
				return err
			}
			r, err := clientRead(s, tag, nil)
			if err != nil {
				return err
			}
			if r.Status != "OK" {
				return s.Failf(dialog.ErrRefused, r.Status+" "+r.Text, "server answered %s", r.Status)
			}
			return nil
		},
		Requery: clientCapability,
		Quit: func(s dialog.Client) error {
			tag := clientTag(s)
			if err := s.Send(tag + " LOGOUT"); err != nil {
				return err
			}
			_, err := clientRead(s, tag, nil)
			return err
		},
	}
}
