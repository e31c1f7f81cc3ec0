package pop3

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// POP3 as check probes it: CAPA pipelined, XSENTINEL as our own command.
var probes = registry.Probes{
	Injection:    "CAPA\r\n",
	Sentinel:     "XSENTINEL\r\n",
	Login:        login,
	LoginInvited: loginInvited,
	Judge: func(line string, replies int, capa bool) int {
		first := replies == 0
		switch {
		case first && strings.HasPrefix(line, "+OK"): // nothing answers XSENTINEL with +OK: CAPA was executed
			return registry.Pipelined
		case first && strings.HasPrefix(line, "-ERR") && capa: // CAPA works here, so this -ERR is ours
			return registry.Ours
		}
		return registry.Undecided
	},
	ReplyEnds: func(line string) bool { return line == "." || strings.HasPrefix(line, "-ERR") },
}
