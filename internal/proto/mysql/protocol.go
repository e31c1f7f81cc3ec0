package mysql

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of mysql; the values live in the files by role.
func init() {
	registry.Register(&registry.Protocol{
		Name: "mysql", Port: 3306, Client: clientHalf(), Server: serverHalf(),
		Probes:     probes,
		Serve:      registry.ServeConnApp(serveApp),
		ClientTest: clientTest(),
	})
}
