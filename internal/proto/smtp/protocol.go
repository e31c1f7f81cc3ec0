package smtp

import "github.com/starttls-go/starttls/internal/proto/registry"

// SMTP, submission and LMTP: one description each, sharing the dialogue
// (LMTP's hello is LHLO), the probes, serve's application and the proxy's;
// clienttest plays submission and LMTP as SMTP.
func init() {
	serve := registry.ServeConnApp(serveApp)
	registry.Register(&registry.Protocol{
		Name: "smtp", Port: 25, Client: clientHalf("EHLO"), Server: serverHalf("EHLO", "ESMTP"),
		Probes:     probes("EHLO"),
		Serve:      serve,
		Proxy:      proxyApp,
		ClientTest: clientTest,
	})
	registry.Register(&registry.Protocol{
		Name: "submission", Port: 587, Client: clientHalf("EHLO"), Server: serverHalf("EHLO", "ESMTP"),
		Implicit: &registry.Twin{Name: "smtps", Port: 465},
		Probes:   probes("EHLO"),
		Serve:    serve,
		Proxy:    proxyApp,
	})
	registry.Register(&registry.Protocol{
		Name: "lmtp", Port: 24, Client: clientHalf("LHLO"), Server: serverHalf("LHLO", "LMTP"),
		Probes: probes("LHLO"),
		Serve:  serve,
		Proxy:  proxyLMTPApp(),
	})
}
