package pop3

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of pop3; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "pop3", Port: 110, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "pop3s", Port: 995},
		Probes:     probes,
		Serve:      serveApp,
		Proxy:      proxyApp,
		ClientTest: clientTest,
	})
}
