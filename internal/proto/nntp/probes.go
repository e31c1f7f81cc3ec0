// Package nntp describes NNTP (RFC 4642 STARTTLS) to the module's tools;
// its replies are three-digit lines parsed by internal/proto/smtp.
package nntp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// NNTP as check probes it: DATE (111) pipelined, HELP (100) our own.
func init() {
	registry.Register(&registry.Protocol{Name: "nntp", Probes: registry.Probes{
		Injection: "DATE\r\n",
		Sentinel:  "HELP\r\n",
		Login:     login,
		Judge: func(line string, replies int, _ bool) int {
			switch first := replies == 0; {
			case first && strings.HasPrefix(line, "100"):
				return registry.Ours
			case first && strings.HasPrefix(line, "111"):
				return registry.Pipelined
			}
			return registry.Undecided
		},
		// A 1xx reply goes on until a lone dot.
		ReplyEnds: func(line string) bool { return line == "." || !strings.HasPrefix(line, "1") },
	}, Serve: app})
}
