package smtp

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

type serverState struct{ helloSeen bool }

// serverHalf is SMTP's server side of the upgrade (kind names it in the greeting: ESMTP, LMTP), registered by init.
func serverHalf(hello, kind string) *dialog.ServerHalf {
	return &dialog.ServerHalf{
		Greet: func(s dialog.Server) error {
			return s.Send(fmt.Sprintf("220 %s %s ready; TLS available", s.Config().Hostname, kind))
		},
		GoAhead: func(s dialog.Server) error { return s.Send("220 2.0.0 Ready to start TLS") },
		Command: func(s dialog.Server, line string) (dialog.Action, error) {
			st, _ := s.State().(*serverState)
			if st == nil {
				st = &serverState{}
				s.SetState(st)
			}
			verb, arg, _ := strings.Cut(line, " ")
			verb = strings.ToUpper(verb)
			switch verb {
			case hello:
				if strings.TrimSpace(arg) == "" {
					return dialog.Continue, s.Send("501 5.5.4 Syntax: " + hello + " hostname")
				}
				st.helloSeen = true
				s.SetClientName(strings.TrimSpace(arg))
				lines := []string{s.Config().Hostname}
				lines = append(lines, s.Config().Advertised...)
				lines = append(lines, "STARTTLS")
				return dialog.Continue, s.Send(Multiline(250, lines)...)
			case "HELO":
				if kind == "LMTP" {
					break
				}
				// HELO cannot carry STARTTLS; under Required the client must come back with EHLO.
				return dialog.Continue, s.Send("250 " + s.Config().Hostname)
			case "STARTTLS":
				switch {
				case arg != "":
					return dialog.Continue, s.Send("501 5.5.4 Syntax error (no parameters allowed)")
				case !st.helloSeen:
					return dialog.Continue, s.Send("503 5.5.1 " + hello + " first")
				}
				return dialog.StartTLS, nil
			case "NOOP":
				return dialog.Continue, s.Send("250 2.0.0 OK")
			case "RSET":
				return dialog.Continue, s.Send("250 2.0.0 OK")
			case "QUIT":
				return dialog.Quit, s.Send("221 2.0.0 Bye")
			}
			if s.Config().Optional {
				return dialog.Handoff, nil
			}
			switch verb {
			case "MAIL", "RCPT", "DATA", "BDAT", "AUTH", "VRFY", "EXPN", "ETRN", "TURN", "ATRN", "BURL":
				return dialog.Continue, s.Send("530 5.7.0 Must issue a STARTTLS command first")
			}
			return dialog.Continue, s.Send("502 5.5.2 Command not recognized")
		},
	}
}
