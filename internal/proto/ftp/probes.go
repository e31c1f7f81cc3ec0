// Package ftp describes FTP (RFC 4217 AUTH TLS) to the module's tools;
// its replies are three-digit lines parsed by internal/proto/smtp.
package ftp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// FTP as check probes it: FEAT (211) pipelined, NOOP (200) our own.
func init() {
	registry.Register(&registry.Protocol{Name: "ftp", Probes: registry.Probes{
		Injection: "FEAT\r\n",
		Sentinel:  "NOOP\r\n",
		Judge: func(line string, replies int, _ bool) int {
			switch first := replies == 0; {
			case first && strings.HasPrefix(line, "200"): // NOOP; FEAT gets 211 or an error
				return registry.Ours
			case first && strings.HasPrefix(line, "211"):
				return registry.Pipelined
			}
			return registry.Undecided
		},
		ReplyEnds: smtp.ReplyEnds,
	}})
}
