package ftp

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of ftp; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "ftp", Port: 21, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "ftps", Port: 990},
		Probes:     probes,
		Serve:      registry.ServeConnApp(serveApp),
		ClientTest: clientTest,
	})
}
