package irc

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is IRC's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		// No greeting: IRC clients speak first, and a NOTICE before the
		// 670 makes openssl s_client -starttls irc give up.
		GoAhead: func(s dialog.Server) error {
			return s.Send(":" + s.Config().Hostname + " 670 * :STARTTLS successful, proceed with TLS handshake")
		},
		Command: func(s dialog.Server, line string) (dialog.Action, error) {
			m, err := clientParse(line)
			if err != nil {
				return dialog.Continue, s.Send(":" + s.Config().Hostname + " 421 * :Unknown command")
			}
			h := ":" + s.Config().Hostname
			switch m.Command {
			case "CAP":
				if len(m.Params) > 0 && strings.EqualFold(m.Params[0], "LS") {
					return dialog.Continue, s.Send(h + " CAP * LS :tls")
				}
				if len(m.Params) > 0 && strings.EqualFold(m.Params[0], "END") {
					return dialog.Continue, nil
				}
				return dialog.Continue, s.Send(h + " CAP * NAK :" + strings.Join(m.Params[min(1, len(m.Params)):], " "))
			case "STARTTLS":
				return dialog.StartTLS, nil
			case "PING":
				return dialog.Continue, s.Send(h + " PONG " + s.Config().Hostname + " :" + strings.Join(m.Params, " "))
			case "QUIT":
				return dialog.Quit, s.Send("ERROR :Closing link")
			}
			if s.Config().Optional {
				return dialog.Handoff, nil
			}
			return dialog.Continue, s.Send(h + " 451 * " + m.Command + " :TLS required: send STARTTLS first")
		},
	}
}
