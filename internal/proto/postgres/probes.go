package postgres

import "github.com/starttls-go/starttls/internal/proto/registry"

// PostgreSQL as check probes it: a StartupMessage pipelined after
// SSLRequest (CVE-2021-23214). A vulnerable server answers it inside TLS;
// a fixed one reports "received unencrypted data after SSL request" with
// an ErrorResponse ('E'); anything else ('R', an authentication request)
// means the startup message was processed.
func probes() registry.Probes {
	body := "\x00\x03\x00\x00user\x00starttls-check\x00\x00"
	n := len(body) + 4
	return registry.Probes{
		Injection:     string([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}) + body,
		Executed:      func(b []byte) bool { return len(b) > 0 && b[0] != 'E' },
		UpgradeName:   "SSLRequest",
		PipelinedName: "a StartupMessage (user starttls-check)",
		Conn:          loginProbes,
	}
}
