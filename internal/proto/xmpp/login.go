package xmpp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// check judges XMPP's pre-TLS stream features for <required/>.
var loginProbes = &registry.ConnProbes{NotRequired: loginNotRequired}

// loginNotRequired: without <required/> a client may go on with the
// stream in plaintext, and an attacker who strips <starttls/> leaves
// nothing for the client to notice (RFC 6120 §5.3.1).
func loginNotRequired(has func(string) bool, caps []string) string {
	if !has("starttls") || has("starttls-required") {
		return ""
	}
	return "the pre-TLS stream features offer <starttls/> without <required/>: " + strings.Join(caps, ", ")
}
