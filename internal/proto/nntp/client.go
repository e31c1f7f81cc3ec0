package nntp

import (
	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// NNTP (RFC 3977, STARTTLS RFC 4642) and implicit nntps (RFC 8143).

// clientReadStatus reads a one-line status reply.
func clientReadStatus(s dialog.Client) (int, string, error) {
	line, err := s.ReadLine()
	if err != nil {
		return 0, "", err
	}
	code, more, _, err := smtp.ParseCodeLine(line, 100)
	if err != nil || more {
		return 0, line, s.Failf(dialog.ErrProtocol, line, "malformed status line")
	}
	return code, line, nil
}

// clientCapabilities asks CAPABILITIES: "101 ...", lines, ".".
func clientCapabilities(s dialog.Client) error {
	if err := s.Send("CAPABILITIES"); err != nil {
		return err
	}
	code, line, err := clientReadStatus(s)
	if err != nil {
		return err
	}
	if code != 101 {
		if s.InTLS() {
			s.SetCaps(nil, false)
			return nil
		}
		// Without CAPABILITIES there is no way to learn of STARTTLS.
		return s.Failf(dialog.ErrNotOffered, line, "CAPABILITIES refused")
	}
	caps, err := dialog.ReadDotBlock(s) // the same dot-terminated block
	if err != nil {
		return err
	}
	s.SetCaps(caps, dialog.Capabilities(caps).Has("STARTTLS"))
	return nil
}

// clientHalf is NNTP's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			code, line, err := clientReadStatus(s)
			if err != nil {
				return err
			}
			s.SetGreeting(line)
			if code != 200 && code != 201 {
				return s.Failf(dialog.ErrRefused, line, "greeting is not 200/201")
			}
			s.SetPhase(dialog.PhaseCaps)
			return clientCapabilities(s)
		},
		Upgrade: func(s dialog.Client) error {
			if err := s.Send("STARTTLS"); err != nil {
				return err
			}
			code, line, err := clientReadStatus(s)
			if err != nil {
				return err
			}
			if code != 382 {
				return s.Failf(dialog.ErrRefused, line, "server answered %d", code)
			}
			return nil
		},
		Requery: clientCapabilities,
		Quit: func(s dialog.Client) error {
			if err := s.Send("QUIT"); err != nil {
				return err
			}
			_, _, err := clientReadStatus(s)
			return err
		},
	}
}
