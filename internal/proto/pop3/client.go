package pop3

import (
	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// POP3 (RFC 1939, CAPA RFC 2449, STLS RFC 2595 §4) and pop3s (RFC 8314).

// clientReadStatus reads a status line: +OK (true) or -ERR.
func clientReadStatus(s dialog.Client) (bool, string, error) {
	line, err := s.ReadLine()
	if err != nil {
		return false, "", err
	}
	ok, _, err := ParseStatus(line)
	if err != nil {
		return false, line, s.Fail(err, line)
	}
	return ok, line, nil
}

func clientCapa(s dialog.Client) error {
	if err := s.Send("CAPA"); err != nil {
		return err
	}
	ok, line, err := clientReadStatus(s)
	if err != nil {
		return err
	}
	if !ok {
		// No CAPA means no way to learn of STLS.
		if s.InTLS() {
			s.SetCaps(nil, false)
			return nil
		}
		return s.Failf(dialog.ErrNotOffered, line, "CAPA refused")
	}
	caps, err := dialog.ReadDotBlock(s)
	if err != nil {
		return err
	}
	s.SetCaps(caps, dialog.Capabilities(caps).Has("STLS"))
	return nil
}

// clientHalf is POP3's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			ok, line, err := clientReadStatus(s)
			if err != nil {
				return err
			}
			s.SetGreeting(line)
			if !ok {
				return s.Failf(dialog.ErrRefused, line, "greeting is -ERR")
			}
			s.SetPhase(dialog.PhaseCaps)
			return clientCapa(s)
		},
		Upgrade: func(s dialog.Client) error {
			if err := s.Send("STLS"); err != nil {
				return err
			}
			ok, line, err := clientReadStatus(s)
			if err != nil {
				return err
			}
			if !ok {
				return s.Failf(dialog.ErrRefused, line, "server answered -ERR")
			}
			return nil
		},
		Requery: clientCapa,
		Quit: func(s dialog.Client) error {
			if err := s.Send("QUIT"); err != nil {
				return err
			}
			_, _, err := clientReadStatus(s)
			return err
		},
	}
}
