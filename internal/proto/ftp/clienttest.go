package ftp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// FTP as clienttest's scenario server speaks it before TLS: AUTH TLS
// (or SSL) is the upgrade command.
var clientTest = &registry.ClientTest{
	Line: &registry.CTLine{
		Greeting:    "220 ftp.test FTP clienttest\r\n",
		CapsVerbs:   []string{"FEAT"},
		Caps:        ctCaps,
		UpgradeVerb: "AUTH",
		UpgradeArgs: []string{"TLS", "SSL"},
		GoAhead:     func(string) string { return "234 Proceed with negotiation\r\n" },
		OK: func(_, verb string) string {
			if verb == "PBSZ" || verb == "PROT" || verb == "TYPE" {
				return "200 OK\r\n"
			}
			return "502 Not implemented\r\n"
		},
		Quit: []string{"QUIT"},
		Refusals: map[string]string{
			"534": "534 Request denied for policy reasons\r\n",
			"500": "500 Unknown command\r\n",
		},
		NoTLS:  "500",
		Inject: func(string) string { return "200 PBSZ=0\r\n200 Protection level set\r\n" },
	},
	Leaks:     []string{"USER", "PASS", "RETR", "STOR", "LIST", "NLST"},
	LoginLine: "USER user",
}

func ctCaps(_, _ string, offer bool, extra []string) string {
	lines := []string{"211-Features:", " PASV", " UTF8"}
	if offer {
		lines = append(lines, " AUTH TLS", " PBSZ", " PROT")
	}
	for _, e := range extra {
		lines = append(lines, " "+e)
	}
	return strings.Join(append(lines, "211 End"), "\r\n") + "\r\n"
}
