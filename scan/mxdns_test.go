package scan

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// fakeDNS is an authoritative DNS server on loopback UDP for the test
// zone given as zone-file lines; a name with no records is NXDOMAIN, a
// name with records of other types NODATA, and names listed in servfail
// get SERVFAIL. Its Resolver talks only to it.
type fakeDNS struct {
	rrs      map[string][]dns.RR // by owner, lowercased with the dot
	servfail map[string]bool
	srv      *dns.Server
	addr     string
}

func startDNS(t *testing.T, lines []string, servfail ...string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{rrs: map[string][]dns.RR{}, servfail: map[string]bool{}}
	for _, l := range lines {
		rr, err := dns.NewRR(l)
		if err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		owner := strings.ToLower(rr.Header().Name)
		f.rrs[owner] = append(f.rrs[owner], rr)
	}
	for _, n := range servfail {
		f.servfail[dns.Fqdn(n)] = true
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = pc.LocalAddr().String()
	started := make(chan struct{})
	f.srv = &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(f.serve), NotifyStartedFunc: func() { close(started) }}
	go func() { _ = f.srv.ActivateAndServe() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("DNS server did not start")
	}
	t.Cleanup(func() { _ = f.srv.Shutdown() })
	return f
}

func (f *fakeDNS) serve(w dns.ResponseWriter, q *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(q)
	m.Authoritative = true
	if len(q.Question) == 1 {
		name := strings.ToLower(q.Question[0].Name)
		rrs, ok := f.rrs[name]
		switch {
		case f.servfail[name]:
			m.Rcode = dns.RcodeServerFailure
		case !ok:
			m.Rcode = dns.RcodeNameError
		default:
			for _, rr := range rrs {
				if rr.Header().Rrtype == q.Question[0].Qtype {
					m.Answer = append(m.Answer, rr)
				}
			}
		}
	}
	_ = w.WriteMsg(m)
}

// Resolver is a pure-Go resolver that sends every query to the fake server.
func (f *fakeDNS) Resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "udp", f.addr)
	}}
}
