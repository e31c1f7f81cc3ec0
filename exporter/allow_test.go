package exporter

import "net/netip"

type netipAddr = netip.Addr

// fakeDNS answers the allow-list test's lookups.
var fakeDNS = map[string][]netip.Addr{
	"inside.test":   {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
	"straddle.test": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")},
}
