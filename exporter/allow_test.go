package exporter

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

type netipAddr = netip.Addr

// fakeDNS answers the allow-list test's lookups.
var fakeDNS = map[string][]netip.Addr{
	"inside.test":   {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")},
	"straddle.test": {netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.1")},
}

// The dialer holds every connection to the address rule: a name that
// passed the check but resolves elsewhere at connect time (DNS
// rebinding) is refused, and an allowed address is dialled.
func TestAllowListDial(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	a, err := ParseAllowList([]string{"192.0.2.0/24", "127.0.0.1/32", "named.test"})
	if err != nil {
		t.Fatal(err)
	}
	answers := map[string][]netip.Addr{
		"rebind.test": {netip.MustParseAddr("127.0.0.2")},
		"good.test":   {netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.1")},
	}
	a.lookup = func(ctx context.Context, host string) ([]netip.Addr, error) { return answers[host], nil }
	dial := a.Dial(&net.Dialer{Timeout: 2 * time.Second})
	ctx := context.Background()
	if _, err := dial(ctx, "tcp", net.JoinHostPort("rebind.test", port)); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("rebind.test -> 127.0.0.2: %v, want ErrNotAllowed", err)
	}
	if _, err := dial(ctx, "tcp", net.JoinHostPort("127.0.0.3", port)); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("127.0.0.3: %v, want ErrNotAllowed", err)
	}
	c, err := dial(ctx, "tcp", net.JoinHostPort("good.test", port))
	if err != nil {
		t.Fatalf("good.test: only its allowed address should be dialled: %v", err)
	}
	if got := c.RemoteAddr().(*net.TCPAddr).IP.String(); got != "127.0.0.1" {
		t.Errorf("dialled %s", got)
	}
	c.Close()
}
