// Package nntp describes NNTP (RFC 4642 STARTTLS) to the module's tools;
// its replies are three-digit lines parsed by internal/proto/smtp.
package nntp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// NNTP as check probes it: DATE (111) pipelined, HELP (100) our own.
var probes = registry.Probes{
	Injection: "DATE\r\n",
	Sentinel:  "HELP\r\n",
	Login:     login,
	Judge:     registry.FirstReply(registry.Prefix("100"), registry.Prefix("111")),
	// A 1xx reply goes on until a lone dot.
	ReplyEnds: func(line string) bool { return line == "." || !strings.HasPrefix(line, "1") },
}
