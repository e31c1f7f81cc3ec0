// Package sieve describes ManageSieve (RFC 5804) to the module's tools.
package sieve

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// Status returns OK, NO, BAD or BYE when line is a ManageSieve response,
// and "" for anything else (a capability, a literal's contents).
func Status(line string) string {
	w, _, _ := strings.Cut(line, " ")
	switch w = strings.ToUpper(w); w {
	case "OK", "NO", "BAD", "BYE":
		return w
	}
	return ""
}

// ManageSieve as check probes it: NOOP pipelined, XSENTINEL our own
// (answered NO or BAD); the capabilities the server re-sends after TLS
// (RFC 5804 §2.2) come before either. serve advertises SASL PLAIN unless
// told otherwise: its application takes AUTHENTICATE PLAIN, and a client
// that sees no SASL inside TLS will not log in.
func init() {
	ends := func(line string) bool {
		u := strings.ToUpper(line)
		return strings.HasPrefix(u, "OK") || strings.HasPrefix(u, "NO") || strings.HasPrefix(u, "BAD")
	}
	registry.Register(&registry.Protocol{Name: "sieve", Probes: registry.Probes{
		Injection: "NOOP\r\n",
		Sentinel:  "XSENTINEL\r\n",
		Login:     login,
		Judge: func(line string, replies int, _ bool) int {
			switch u := strings.ToUpper(line); {
			case replies == 0 && strings.HasPrefix(u, "OK"): // NOOP; XSENTINEL gets NO or BAD
				return registry.Pipelined
			case replies == 0 && (strings.HasPrefix(u, "NO") || strings.HasPrefix(u, "BAD")):
				return registry.Ours
			}
			return registry.Undecided
		},
		ReplyEnds: ends,
		AfterTLS:  func(line string) bool { return strings.HasPrefix(strings.ToUpper(line), "OK") },
	}, Serve: app, ServeCapabilities: []string{"SASL PLAIN"}})
}
