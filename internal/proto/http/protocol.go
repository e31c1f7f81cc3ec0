package http

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of http; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "http", Port: 80, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "https", Port: 443},
		Probes:     probes,
		Serve:      registry.ServeConnApp(serveApp),
		ClientTest: clientTest,
	})
}
