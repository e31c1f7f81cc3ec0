// Package irc describes IRC (IRCv3 STARTTLS) to the module's tools.
package irc

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// IRC as check probes it: two PINGs with different tokens; notices and
// numerics answer neither.
func init() {
	registry.Register(&registry.Protocol{Name: "irc", Probes: registry.Probes{
		Injection: "PING starttls-check\r\n",
		Sentinel:  "PING starttls-sentinel\r\n",
		Judge: func(line string, _ int, _ bool) int {
			switch {
			case strings.Contains(line, "starttls-sentinel"):
				return registry.Ours
			case strings.Contains(line, "starttls-check"):
				return registry.Pipelined
			}
			return registry.Ignore
		},
	}, Serve: app})
}
