package ldap

import (
	"bytes"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// LDAP as check probes it: a WhoAmI request (RFC 4532) as messageID 2,
// any answer to which is a whole BER message; slapd refusing it inside
// TLS sends a Notice of Disconnection instead.
var probes = registry.Probes{
	Injection: "\x30\x1e\x02\x01\x02\x77\x19\x80\x17" + "1.3.6.1.4.1.4203.1.11.3",
	Executed: func(b []byte) bool {
		return !bytes.Contains(b, []byte("1.3.6.1.4.1.1466.20036"))
	},
}
