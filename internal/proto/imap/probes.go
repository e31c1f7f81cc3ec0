package imap

import (
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// IMAP as check probes it: the tags tell the pipelined NOOP (zz) from
// our own (yy); untagged data answers neither.
var probes = registry.Probes{
	Injection:    "zz NOOP\r\n",
	Partial:      "zz NOOP",
	Sentinel:     "yy NOOP\r\n",
	Login:        login,
	LoginInvited: loginInvited,
	Judge:        registry.Marked(registry.Prefix("yy "), registry.Prefix("zz ")),
	Conn:         loginProbes,
}
