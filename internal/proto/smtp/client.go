package smtp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// SMTP (RFC 5321, STARTTLS RFC 3207), submission (RFC 6409, 8314) and LMTP
// (RFC 2033) share one dialogue; LMTP says LHLO where SMTP says EHLO.

// clientReadReply reads one reply, at most dialog.MaxReplyLines lines.
func clientReadReply(s dialog.Client) (Reply, error) {
	var r Reply
	for i := 0; i < dialog.MaxReplyLines; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return r, err
		}
		code, more, text, err := ParseLine(line)
		if err != nil {
			return r, s.Fail(err, line)
		}
		if i > 0 && code != r.Code {
			return r, s.Failf(dialog.ErrProtocol, line, "status code changed within a reply (%d then %d)", r.Code, code)
		}
		r.Code = code
		r.Lines = append(r.Lines, text)
		if !more {
			return r, nil
		}
	}
	return r, s.Failf(dialog.ErrProtocol, "", "reply longer than %d lines", dialog.MaxReplyLines)
}

// clientHalf is SMTP's client side of the upgrade (hello: EHLO, or LHLO for LMTP), registered by init.
func clientHalf(hello string) *dialog.ClientHalf {
	ehlo := func(s dialog.Client) error {
		if err := s.Send(hello + " " + s.Config().LocalName); err != nil {
			return err
		}
		r, err := clientReadReply(s)
		if err != nil {
			return err
		}
		if r.Code != 250 {
			// No extended hello means no way to learn of STARTTLS (the
			// legacy-downgrade attack): there is nothing to negotiate.
			return s.Failf(dialog.ErrNotOffered, r.String(), "%s refused", hello)
		}
		caps := dialog.Capabilities(r.Lines[1:])
		s.SetCaps(caps, caps.Has("STARTTLS"))
		return nil
	}
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			if err := ClientGreet220(s)(clientReadReply(s)); err != nil {
				return err
			}
			return ehlo(s)
		},
		Upgrade: ClientCodeUpgrade("STARTTLS", 220, clientReadReply),
		Requery: ehlo,
		Quit: func(s dialog.Client) error {
			if err := s.Send("QUIT"); err != nil {
				return err
			}
			_, err := clientReadReply(s)
			return err
		},
	}
}

// ClientGreet220 takes the greeting of a three-digit-code protocol (SMTP,
// FTP): only 220 lets the dialogue go on. It returns a function so that
// the reply and error of a reading call can be passed to it whole.
func ClientGreet220(s dialog.Client) func(r Reply, err error) error {
	return func(r Reply, err error) error {
		if err != nil {
			return err
		}
		s.SetGreeting(strings.Join(r.Lines, "\n"))
		if r.Code != 220 {
			return s.Failf(dialog.ErrRefused, r.String(), "greeting is not 220")
		}
		s.SetPhase(dialog.PhaseCaps)
		return nil
	}
}

// ClientCodeUpgrade sends the upgrade command of a three-digit-code protocol and
// takes only want as the go-ahead.
func ClientCodeUpgrade(cmd string, want int, read func(dialog.Client) (Reply, error)) func(dialog.Client) error {
	return func(s dialog.Client) error {
		if err := s.Send(cmd); err != nil {
			return err
		}
		r, err := read(s)
		if err != nil {
			return err
		}
		if r.Code != want {
			return s.Failf(dialog.ErrRefused, r.String(), "server answered %d", r.Code)
		}
		return nil
	}
}
