package ftp

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is FTP's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		Greet: func(s dialog.Server) error {
			return s.Send(fmt.Sprintf("220 %s FTP ready; AUTH TLS available", s.Config().Hostname))
		},
		GoAhead: func(s dialog.Server) error { return s.Send("234 Proceed with TLS negotiation") },
		Command: func(s dialog.Server, line string) (dialog.Action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "FEAT":
				lines := []string{"211-Features:", " AUTH TLS", " PBSZ", " PROT"}
				for _, c := range s.Config().Advertised {
					lines = append(lines, " "+c)
				}
				return dialog.Continue, s.Send(append(lines, "211 End")...)
			case "AUTH":
				switch strings.ToUpper(strings.TrimSpace(arg)) {
				case "TLS", "TLS-C", "SSL":
					return dialog.StartTLS, nil
				}
				return dialog.Continue, s.Send("504 AUTH mechanism not supported; use AUTH TLS")
			case "NOOP":
				return dialog.Continue, s.Send("200 OK")
			case "QUIT":
				return dialog.Quit, s.Send("221 Goodbye")
			}
			if s.Config().Optional {
				return dialog.Handoff, nil
			}
			return dialog.Continue, s.Send("530 TLS required: send AUTH TLS first")
		},
	}
}
