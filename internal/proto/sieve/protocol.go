package sieve

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of sieve; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "sieve", Port: 4190, Client: clientHalf(), Server: serverHalf(),
		Probes: probes,
		Serve:  app,
		// Its application takes AUTHENTICATE PLAIN, and a client that sees
		// no SASL inside TLS will not log in.
		ServeCapabilities: []string{"SASL PLAIN"},
		ClientTest:        clientTest,
	})
}
