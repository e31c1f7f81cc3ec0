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
// (RFC 5804 §2.2) come before either.
var probes = registry.Probes{
	Injection: "NOOP\r\n",
	Sentinel:  "XSENTINEL\r\n",
	Login:     login,
	// NOOP gets OK; XSENTINEL gets NO or BAD.
	Judge:     registry.FirstReply(registry.PrefixFold("NO", "BAD"), registry.PrefixFold("OK")),
	ReplyEnds: registry.PrefixFold("OK", "NO", "BAD"),
	AfterTLS:  registry.PrefixFold("OK"),
}
