package nntp

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is NNTP's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		Greet: func(s dialog.Server) error {
			return s.Send(fmt.Sprintf("200 %s NNTP ready; STARTTLS available", s.Config().Hostname))
		},
		GoAhead: func(s dialog.Server) error { return s.Send("382 Continue with TLS negotiation") },
		Command: func(s dialog.Server, line string) (dialog.Action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "CAPABILITIES":
				lines := []string{"101 Capability list:", "VERSION 2", "READER", "STARTTLS"}
				lines = append(lines, s.Config().Advertised...)
				return dialog.Continue, s.Send(append(lines, ".")...)
			case "STARTTLS":
				if arg != "" {
					return dialog.Continue, s.Send("501 STARTTLS takes no arguments")
				}
				return dialog.StartTLS, nil
			case "DATE":
				return dialog.Continue, s.Send("111 " + s.Config().Start.UTC().Format("20060102150405"))
			case "QUIT":
				return dialog.Quit, s.Send("205 Bye")
			}
			if s.Config().Optional {
				return dialog.Handoff, nil
			}
			// RFC 4642 §2.2.2: 483 means "use STARTTLS first".
			return dialog.Continue, s.Send("483 Encryption required: use STARTTLS first")
		},
	}
}
