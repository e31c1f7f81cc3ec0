package scan

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

func TestSourcesPick(t *testing.T) {
	addr := func(a net.Addr) string {
		if a == nil {
			return "<system>"
		}
		return a.(*net.TCPAddr).IP.String()
	}
	cases := []struct {
		name   string
		s      *sources
		remote string
		want   []string
	}{
		{"range /30: its two host addresses in turn", newSources(netip.Addr{}, netip.MustParsePrefix("10.1.2.0/30")), "192.0.2.1",
			[]string{"10.1.2.1", "10.1.2.2", "10.1.2.1"}},
		{"range /32: the one address", newSources(netip.Addr{}, netip.MustParsePrefix("10.1.2.3/32")), "192.0.2.1",
			[]string{"10.1.2.3", "10.1.2.3"}},
		{"IPv6 range", newSources(netip.Addr{}, netip.MustParsePrefix("2001:db8::/64")), "2001:db8:1::1",
			[]string{"2001:db8::1", "2001:db8::2", "2001:db8::3"}},
		{"unmasked range is masked", newSources(netip.Addr{}, netip.MustParsePrefix("10.9.9.9/24")), "192.0.2.1",
			[]string{"10.9.9.1", "10.9.9.2"}},
		{"fixed address", newSources(netip.MustParseAddr("127.0.0.7"), netip.Prefix{}), "127.0.0.1",
			[]string{"127.0.0.7", "127.0.0.7"}},
		{"loopback target without a source: spread", newSources(netip.Addr{}, netip.Prefix{}), "127.0.0.1",
			[]string{"127.0.0.1", "127.0.0.2", "127.0.0.3"}},
		{"other target without a source: the system's choice", newSources(netip.Addr{}, netip.Prefix{}), "192.0.2.1",
			[]string{"<system>", "<system>"}},
		{"IPv6 loopback without a source: the system's choice", newSources(netip.Addr{}, netip.Prefix{}), "::1",
			[]string{"<system>"}},
	}
	for _, c := range cases {
		var got []string
		for range c.want {
			got = append(got, addr(c.s.pick(netip.MustParseAddr(c.remote))))
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	// The spread wraps inside 127.0.0.0/16, past 127.0.255.254.
	s := newSources(netip.Addr{}, netip.Prefix{})
	s.next.Store(65533)
	for _, want := range []string{"127.0.255.254", "127.0.0.1"} {
		if got := addr(s.pick(netip.MustParseAddr("127.0.0.1"))); got != want {
			t.Errorf("wrap: %s, want %s", got, want)
		}
	}
}

func TestWorkersFor(t *testing.T) {
	for _, c := range []struct {
		rate    float64
		timeout time.Duration
		fds     int
		want    int
	}{
		{0, 5 * time.Second, 1 << 20, 100},       // no rate: the old default
		{1000, 5 * time.Second, 1 << 20, 5000},   // rate × timeout
		{1000, 5 * time.Second, 8000, 2000},      // a quarter of the descriptors
		{2, 5 * time.Second, 1 << 20, 100},       // never below 100
		{150.5, 2 * time.Second, 1 << 20, 301},   // rounded up
		{1e6, 10 * time.Second, 1 << 20, 262144}, // bounded
	} {
		if got := workersFor(c.rate, c.timeout, c.fds); got != c.want {
			t.Errorf("workersFor(%v, %v, %d) = %d, want %d", c.rate, c.timeout, c.fds, got, c.want)
		}
	}
}

// With SourceRange the connections come from its addresses in turn; a
// target of the other family is refused without a connection.
func TestSourceRange(t *testing.T) {
	port, sources := refusingServer(t)
	var in strings.Builder
	for range 4 { // the same target four times: four targets to the engine
		fmt.Fprintf(&in, "smtp://127.0.0.1:%d\n", port)
	}
	fmt.Fprintf(&in, "smtp://[::1]:%d\n", port)
	sink := &memSink{}
	_, err := Run(context.Background(), strings.NewReader(in.String()), "", sink,
		Options{Concurrency: 1, Timeout: 2 * time.Second, SourceRange: netip.MustParsePrefix("127.0.0.8/30")})
	if err != nil {
		t.Fatal(err)
	}
	from := sources()
	if len(from) != 2 || from["127.0.0.9"] == 0 || from["127.0.0.10"] == 0 {
		t.Errorf("connections came from %v, want 127.0.0.9 and 127.0.0.10 in turn", from)
	}
	for _, r := range sink.recs {
		if strings.Contains(r.Target, "[::1]") && (r.Status != starttls.StatusError || !strings.Contains(r.Error, "family")) {
			t.Errorf("%s: %s %q, want an error naming the address family", r.Target, r.Status, r.Error)
		}
	}
}
