package ftp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// check reads FTP's AUTH capability without its security mechanisms.
func init() {
	registry.RegisterConnProbes(&registry.ConnProbes{AuthArgs: loginWithoutTLSMechs}, "ftp")
}

// loginWithoutTLSMechs drops FTP's security mechanisms (RFC 4217) from
// AUTH's arguments: "AUTH TLS" is the upgrade itself, not a login.
func loginWithoutTLSMechs(args []string) []string {
	var out []string
	for _, a := range args {
		for _, m := range strings.Split(a, ";") {
			switch strings.ToUpper(strings.TrimSpace(m)) {
			case "TLS", "SSL", "TLS-C", "TLS-P", "":
			default:
				out = append(out, m)
			}
		}
	}
	return out
}
