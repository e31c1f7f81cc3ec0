package imap

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of imap; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "imap", Port: 143, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "imaps", Port: 993},
		Probes:     probes,
		Serve:      registry.ServeConnApp(serveApp),
		Proxy:      proxyApp,
		ClientTest: clientTest(),
	})
}
