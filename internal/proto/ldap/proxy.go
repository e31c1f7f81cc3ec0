package ldap

import "github.com/starttls-go/starttls/internal/proto/registry"

// The proxy relays LDAP's bytes as they are: STARTTLS is the first
// exchange, and after it the client's first message starts the backend's
// session.
var proxyApp = &registry.ProxyApp{Originate: true}
