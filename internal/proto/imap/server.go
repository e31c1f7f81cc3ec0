package imap

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is IMAP's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	caps := func(s dialog.Server) string {
		c := []string{"IMAP4rev1", "STARTTLS"}
		if !s.Config().Optional {
			c = append(c, "LOGINDISABLED")
		}
		return strings.Join(append(c, s.Config().Advertised...), " ")
	}
	return &dialog.ServerHalf{
		Greet: func(s dialog.Server) error {
			return s.Send(fmt.Sprintf("* OK [CAPABILITY %s] %s IMAP4rev1 ready", caps(s), s.Config().Hostname))
		},
		GoAhead: func(s dialog.Server) error { return s.Send(s.State().(string) + " OK Begin TLS negotiation now") },
		Command: func(s dialog.Server, line string) (dialog.Action, error) {
			tag, rest, _ := strings.Cut(line, " ")
			if tag == "" || !TagOK(tag) || tag == "*" {
				return dialog.Continue, s.Send("* BAD Malformed command")
			}
			verb, arg, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(verb) {
			case "CAPABILITY":
				return dialog.Continue, s.Send("* CAPABILITY "+caps(s), tag+" OK CAPABILITY completed")
			case "NOOP":
				return dialog.Continue, s.Send(tag + " OK NOOP completed")
			case "LOGOUT":
				return dialog.Quit, s.Send("* BYE Logging out", tag+" OK LOGOUT completed")
			case "STARTTLS":
				if arg != "" {
					return dialog.Continue, s.Send(tag + " BAD STARTTLS takes no arguments")
				}
				s.SetState(tag) // for the go-ahead
				return dialog.StartTLS, nil
			}
			if s.Config().Optional {
				return dialog.Handoff, nil
			}
			switch strings.ToUpper(verb) {
			case "LOGIN", "AUTHENTICATE":
				return dialog.Continue, s.Send(tag + " NO [PRIVACYREQUIRED] Use STARTTLS first")
			}
			return dialog.Continue, s.Send(tag + " BAD [PRIVACYREQUIRED] Command not available before STARTTLS")
		},
	}
}
