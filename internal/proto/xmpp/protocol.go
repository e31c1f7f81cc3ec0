package xmpp

import "github.com/starttls-go/starttls/internal/proto/registry"

// XMPP between client and server, and between servers: one description
// each, told apart by the stream's namespace; clienttest plays the
// client-to-server one.
func init() {
	serve := registry.ServeConnApp(serveApp)
	registry.Register(&registry.Protocol{
		Name: "xmpp", Port: 5222, Client: clientHalf(NSClient), Server: serverHalf(NSClient),
		Implicit:   &registry.Twin{Name: "xmpps", Port: 5223},
		Probes:     probes,
		Serve:      serve,
		ClientTest: clientTest,
	})
	registry.Register(&registry.Protocol{
		Name: "xmpp-server", Port: 5269, Client: clientHalf(NSServer), Server: serverHalf(NSServer),
		Implicit: &registry.Twin{Name: "xmpps-server", Port: 5270},
		Probes:   probes,
		Serve:    serve,
	})
}
