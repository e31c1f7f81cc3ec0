package mail

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// TestADTrusted is the rule that decides whether DNSSEC (and so DANE)
// counts at all. It is decided from the address as written, never by
// dialling it: only loopback may carry an AD bit unprotected.
func TestADTrusted(t *testing.T) {
	for _, c := range []struct {
		addr    string
		trustAD bool
		want    bool
	}{
		{"127.0.0.1:53", false, true},
		{"127.53.1.2:5353", false, true},
		{"[::1]:53", false, true},
		{"[::ffff:127.0.0.1]:53", false, true},
		{"192.0.2.53:53", false, false},
		{"[2001:db8::53]:53", false, false},
		{"10.0.0.1:53", false, false},
		// The unspecified address reaches the local host on Linux, but it
		// is not loopback as written: not trusted.
		{"0.0.0.0:53", false, false},
		// A name could resolve anywhere, /etc/hosts included: what the
		// check would dial is not known from the text, so it is not trusted.
		{"localhost:53", false, false},
		{"resolver.example:53", false, false},
		{"[fe80::1%lo]:53", false, false},
		{"127.0.0.1", false, false}, // no port: not a resolver address NormalizeResolver made
		{"", false, false},
		{"192.0.2.53:53", true, true},
		{"localhost:53", true, true},
	} {
		r := &Resolver{Addr: c.addr, TrustAD: c.trustAD}
		if got := r.ADTrusted(); got != c.want {
			t.Errorf("%q trust-ad=%v: %v, want %v", c.addr, c.trustAD, got, c.want)
		}
	}
}

// TestQuerySecure: an answer is secure only with the AD bit from a trusted
// resolver; the raw bit is kept either way.
func TestQuerySecure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs := []string{"mx.example.test. A 127.0.0.1", "alias.example.test. CNAME mx.example.test."}
	for _, c := range []struct {
		name        string
		ad, trustAD bool
		hostname    bool // address the resolver as localhost:PORT
		want        bool
	}{
		{"AD from loopback", true, false, false, true},
		{"no AD from loopback", false, false, false, false},
		{"AD from a name", true, false, true, false},
		{"AD from a name, --trust-ad", true, true, true, true},
		{"no AD, --trust-ad", false, true, false, false},
	} {
		f := startFakeDNS(t, c.ad, nil, recs...)
		addr := f.addr
		if c.hostname {
			// localhost is 127.0.0.1 in /etc/hosts; only loopback is dialled.
			_, port, _ := net.SplitHostPort(addr)
			addr = "localhost:" + port
		}
		r := &Resolver{Addr: addr, TrustAD: c.trustAD, Timeout: 5 * time.Second}
		a, err := r.Query(ctx, "alias.example.test", dns.TypeA)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if a.Secure != c.want || a.AD != c.ad || a.Final != "mx.example.test." || len(a.RRs) != 1 {
			t.Errorf("%s: secure %v ad %v final %s rrs %v; want secure %v", c.name, a.Secure, a.AD, a.Final, a.RRs, c.want)
		}
	}
}
