// Package http describes HTTP's RFC 2817 upgrade to the module's tools.
package http

import "github.com/starttls-go/starttls/internal/proto/registry"

// HTTP as check probes it: a second request pipelined after the upgrade
// request; there is no sentinel, the probe waits out its deadline.
var probes = registry.Probes{
	Injection:     "OPTIONS * HTTP/1.1\r\nHost: starttls-check\r\n\r\n",
	UpgradeName:   "OPTIONS * with Upgrade: TLS/1.0",
	PipelinedName: "a second request (OPTIONS * with Host: starttls-check)",
	Conn:          loginProbes,
}
