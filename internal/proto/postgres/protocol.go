package postgres

import "github.com/starttls-go/starttls/internal/proto/registry"

// The one description of postgres. Direct SSL shares the port; it needs
// ALPN "postgresql" on both sides: PostgreSQL 17 servers reject direct
// SSL without it.
func init() {
	registry.Register(&registry.Protocol{
		Name: "postgres", Port: 5432, Client: clientHalf(), Server: serverHalf(),
		Implicit:   &registry.Twin{Name: "postgres-direct", Port: 5432, ALPN: []string{ALPN}},
		Probes:     probes(),
		Serve:      registry.ServeConnApp(serveApp),
		Proxy:      proxyApp,
		ClientTest: clientTest(),
	})
}
