package sieve

import (
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is ManageSieve's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	capLines := func(s dialog.Server, inTLS bool) []string {
		lines := []string{`"IMPLEMENTATION" "starttls-go"`, `"SIEVE" "fileinto vacation"`}
		extra := s.Config().Advertised
		if inTLS {
			extra = s.Config().Capabilities
		}
		for _, e := range extra {
			name, val, _ := strings.Cut(e, " ")
			l := strconv.Quote(strings.ToUpper(name))
			if val != "" {
				l += " " + strconv.Quote(val)
			}
			lines = append(lines, l)
		}
		if !inTLS {
			lines = append(lines, `"STARTTLS"`)
		}
		return append(lines, `"VERSION" "1.0"`, `OK "ManageSieve ready"`)
	}
	return &dialog.ServerHalf{
		Greet:    func(s dialog.Server) error { return s.Send(capLines(s, false)...) },
		GoAhead:  func(s dialog.Server) error { return s.Send(`OK "Begin TLS negotiation now"`) },
		AfterTLS: func(s dialog.Server) error { return s.Send(capLines(s, true)...) },
		Command: func(s dialog.Server, line string) (dialog.Action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "CAPABILITY":
				return dialog.Continue, s.Send(capLines(s, false)...)
			case "STARTTLS":
				if arg != "" {
					return dialog.Continue, s.Send(`NO "STARTTLS takes no arguments"`)
				}
				return dialog.StartTLS, nil
			case "NOOP":
				return dialog.Continue, s.Send(`OK "NOOP completed"`)
			case "LOGOUT":
				return dialog.Quit, s.Send(`OK "Logout completed"`)
			}
			if s.Config().Optional {
				return dialog.Handoff, nil
			}
			return dialog.Continue, s.Send(`NO (ENCRYPT-NEEDED) "Use STARTTLS first"`)
		},
	}
}
