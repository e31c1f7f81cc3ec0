package irc

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of irc; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "irc", Port: 6667, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "ircs", Port: 6697},
		Probes:     probes,
		Serve:      app,
		ClientTest: clientTest,
	})
}
