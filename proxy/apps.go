package proxy

import (
	"sort"
	"strings"

	"github.com/starttls-go/starttls"
	_ "github.com/starttls-go/starttls/internal/proto/all" // the protocols' proxy applications
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// appFor returns the proxy's application for a base protocol: the one its
// folder (internal/proto/NAME/proxy.go) registered, if the starttls
// package knows the protocol too.
func appFor(base starttls.Protocol) *registry.ProxyApp {
	p := registry.Lookup(string(base))
	if p == nil || p.Proxy == nil {
		return nil
	}
	if _, err := starttls.Lookup(base); err != nil {
		return nil
	}
	return p.Proxy
}

// SupportedProtocols lists the protocols the proxy relays (those
// registered in the starttls package), with their implicit variants.
func SupportedProtocols() string {
	var out []string
	for _, p := range starttls.Protocols() {
		info, err := starttls.Lookup(p)
		if err == nil && appFor(info.Base) != nil {
			out = append(out, string(p))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}
