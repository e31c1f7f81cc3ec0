package xmpp

import (
	"bytes"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// XMPP as check probes it: a ping stanza; inside TLS the server must wait
// for a new stream, and a stream error is a refusal, not an answer.
func init() {
	ping := "<iq type='get' id='starttls-check'><ping xmlns='urn:xmpp:ping'/></iq>"
	executed := func(b []byte) bool { return bytes.Contains(b, []byte("<iq")) }
	for _, name := range []string{"xmpp", "xmpp-server"} {
		registry.Register(&registry.Protocol{Name: name, Probes: registry.Probes{Injection: ping, Executed: executed}})
	}
}
