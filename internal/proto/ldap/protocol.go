package ldap

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of ldap; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "ldap", Port: 389, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "ldaps", Port: 636},
		Probes:     probes,
		Serve:      registry.ServeConnApp(serveApp),
		Proxy:      proxyApp,
		ClientTest: clientTest,
	})
}
