package pop3

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// POP3 as clienttest's scenario server speaks it before TLS.
var clientTest = &registry.ClientTest{
	Line: &registry.CTLine{
		Greeting:    "+OK mail.test POP3 clienttest\r\n",
		CapsVerbs:   []string{"CAPA"},
		Caps:        ctCaps,
		UpgradeVerb: "STLS",
		GoAhead:     func(string) string { return "+OK Begin TLS negotiation\r\n" },
		OK:          func(string, string) string { return "+OK\r\n" },
		Quit:        []string{"QUIT"},
		Refusals:    map[string]string{"-ERR": "-ERR TLS not available\r\n"},
		NoTLS:       "-ERR",
		Inject:      func(string) string { return "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n" },
		Mechanisms:  []string{"USER", "SASL PLAIN LOGIN"},
	},
	Leaks: []string{"USER", "PASS", "APOP", "AUTH", "RETR", "TOP", "LIST", "STAT", "UIDL"},
	Scenarios: []registry.CTScenario{{Name: "spoof-error-escape", Kind: "spoof",
		RefuseText: "-ERR " + registry.CTEscapeBait + "\r\n",
		Summary:    "STLS is answered by -ERR with terminal escape sequences",
		Expect:     "abort without credentials; never reproduce the raw ESC byte in its output"}},
	LoginLine: "USER user",
}

func ctCaps(_, _ string, offer bool, extra []string) string {
	lines := []string{"+OK Capability list follows", "TOP", "UIDL"}
	lines = append(lines, extra...)
	if offer {
		lines = append(lines, "STLS")
	}
	return strings.Join(append(lines, "."), "\r\n") + "\r\n"
}
