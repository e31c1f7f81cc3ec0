package pop3

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is POP3's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		Greet: func(s dialog.Server) error {
			return s.Send(fmt.Sprintf("+OK %s POP3 ready", s.Config().Hostname))
		},
		GoAhead: func(s dialog.Server) error { return s.Send("+OK Begin TLS negotiation") },
		Command: func(s dialog.Server, line string) (dialog.Action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "CAPA":
				lines := []string{"+OK Capability list follows"}
				lines = append(lines, s.Config().Advertised...)
				lines = append(lines, "STLS", ".")
				return dialog.Continue, s.Send(lines...)
			case "STLS":
				if arg != "" {
					return dialog.Continue, s.Send("-ERR STLS takes no arguments")
				}
				return dialog.StartTLS, nil
			case "QUIT":
				return dialog.Quit, s.Send("+OK Bye")
			}
			if s.Config().Optional {
				return dialog.Handoff, nil
			}
			switch strings.ToUpper(verb) {
			case "USER", "PASS", "APOP", "AUTH":
				return dialog.Continue, s.Send("-ERR [AUTH] Use STLS first")
			}
			return dialog.Continue, s.Send("-ERR Command not available before STLS")
		},
	}
}
