// Package ftp describes FTP (RFC 4217 AUTH TLS) to the module's tools;
// its replies are three-digit lines parsed by internal/proto/smtp.
package ftp

import (
	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// FTP as check probes it: FEAT (211) pipelined, NOOP (200) our own.
var probes = registry.Probes{
	Injection: "FEAT\r\n",
	Sentinel:  "NOOP\r\n",
	Judge:     registry.FirstReply(registry.Prefix("200"), registry.Prefix("211")),
	ReplyEnds: smtp.ReplyEnds,
	Conn:      loginProbes,
}
