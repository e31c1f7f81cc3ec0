package xmpp

import (
	"bytes"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// XMPP as check probes it: a ping stanza; inside TLS the server must wait
// for a new stream, and a stream error is a refusal, not an answer.
var probes = registry.Probes{
	Injection: "<iq type='get' id='starttls-check'><ping xmlns='urn:xmpp:ping'/></iq>",
	Executed:  func(b []byte) bool { return bytes.Contains(b, []byte("<iq")) },
	Conn:      loginProbes,
}
