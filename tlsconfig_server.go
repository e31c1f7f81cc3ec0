package starttls

import (
	"crypto/tls"
	"runtime"
	"sync"
	"weak"
)

// serverTLSKey names one prepared server configuration: the caller's
// tls.Config (held weakly, so the cache never keeps it alive) and the ALPN
// list the protocol adds when the caller set none.
type serverTLSKey struct {
	cfg  weak.Pointer[tls.Config]
	alpn string
}

var serverTLSCache sync.Map // serverTLSKey -> *tls.Config

// serverTLS returns the tls.Config a server handshake uses: a clone of the
// caller's with our defaults, made once per caller configuration and
// protocol. Cloning per connection would give every connection its own
// automatically generated session-ticket keys, so that no ticket a server
// issued could ever be resumed; one clone keeps crypto/tls's own key
// rotation. crypto/tls forbids changing a Config once it is in use, so the
// clone cannot go stale.
func serverTLS(user *tls.Config, alpn []string) *tls.Config {
	joined := ""
	for _, p := range alpn {
		joined += p + "\x00"
	}
	key := serverTLSKey{weak.Make(user), joined}
	if tc, ok := serverTLSCache.Load(key); ok {
		return tc.(*tls.Config)
	}
	tc := user.Clone()
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	if len(tc.NextProtos) == 0 {
		tc.NextProtos = alpn
	}
	actual, loaded := serverTLSCache.LoadOrStore(key, tc)
	if !loaded {
		runtime.AddCleanup(user, func(k serverTLSKey) { serverTLSCache.Delete(k) }, key)
	}
	return actual.(*tls.Config)
}
