// Package irc describes IRC (IRCv3 STARTTLS) to the module's tools.
package irc

import "github.com/starttls-go/starttls/internal/proto/registry"

// IRC as check probes it: two PINGs with different tokens; notices and
// numerics answer neither.
var probes = registry.Probes{
	Injection: "PING starttls-check\r\n",
	Sentinel:  "PING starttls-sentinel\r\n",
	Judge:     registry.Marked(registry.Contains("starttls-sentinel"), registry.Contains("starttls-check")),
}
