package nntp

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of nntp; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "nntp", Port: 119, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "nntps", Port: 563},
		Probes:     probes,
		Serve:      app,
		ClientTest: clientTest,
	})
}
