package mail

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/serve"
)

// fakeDNS answers from a fixed set of records on a loopback port: no
// DNSSEC, no root, no daemons, so the discovery paths that mailtest's real
// NSD and unbound make costly (a SERVFAIL for one name, a stalled policy
// host) run in every `go test`.
type fakeDNS struct {
	addr string
	ad   bool // set the AD bit on every answer
	rrs  map[string][]dns.RR
	fail map[string]bool // owner names answered with SERVFAIL
}

func startFakeDNS(t *testing.T, ad bool, fail []string, records ...string) *fakeDNS {
	t.Helper()
	f := &fakeDNS{ad: ad, rrs: map[string][]dns.RR{}, fail: map[string]bool{}}
	for _, s := range records {
		rr, err := dns.NewRR(s)
		if err != nil {
			t.Fatalf("record %q: %v", s, err)
		}
		name := strings.ToLower(rr.Header().Name)
		f.rrs[name] = append(f.rrs[name], rr)
	}
	for _, n := range fail {
		f.fail[dns.Fqdn(strings.ToLower(n))] = true
	}
	// UDP and TCP on one port (a truncated answer is retried over TCP).
	var pc net.PacketConn
	var l net.Listener
	for i := 0; i < 10 && l == nil; i++ {
		c, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if l, err = net.Listen("tcp", c.LocalAddr().String()); err != nil {
			c.Close()
			continue
		}
		pc = c
	}
	if l == nil {
		t.Fatal("no loopback port free for both UDP and TCP")
	}
	f.addr = pc.LocalAddr().String()
	for _, s := range []*dns.Server{{PacketConn: pc, Handler: f}, {Listener: l, Handler: f}} {
		go func() { _ = s.ActivateAndServe() }()
		t.Cleanup(func() { _ = s.Shutdown() })
	}
	return f
}

func (f *fakeDNS) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.RecursionAvailable = true
	defer func() { _ = w.WriteMsg(m) }()
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		return
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if f.fail[name] {
		m.Rcode = dns.RcodeServerFailure
		return
	}
	m.AuthenticatedData = f.ad
	// As a recursive resolver does: the CNAME chain and the records at
	// its end in one answer.
	for i := 0; i < 8; i++ {
		rrs, ok := f.rrs[name]
		if !ok {
			if i == 0 {
				m.Rcode = dns.RcodeNameError
			}
			return
		}
		var next string
		for _, rr := range rrs {
			if rr.Header().Rrtype == q.Qtype {
				m.Answer = append(m.Answer, rr)
			} else if c, ok := rr.(*dns.CNAME); ok && q.Qtype != dns.TypeCNAME {
				m.Answer = append(m.Answer, c)
				next = strings.ToLower(c.Target)
			}
		}
		if next == "" {
			return
		}
		name = next
	}
}

// discoveryCase is one domain LABEL.example.test of the fake world: the
// defaults (one MX with STARTTLS and a valid certificate, an enforce
// policy, a TLS-RPT record) changed by edit.
type discoveryCase struct {
	label string
	edit  func(d *fakeDomain)
	want  []string
	// evidence must occur in the evidence of the finding with that id.
	evidence map[string]string
	sev      map[string]check.Severity
}

type fakeDomain struct {
	name, mx     string // the domain and its MX host (default mx.example.test)
	port         int    // the SMTP port: TLSA owner names need it
	tlsa3        string // "3 1 1 ..." of the MX's key
	extra        []string
	sts, rpt     []string // TXT strings at _mta-sts and _smtp._tls
	fail         []string // labels under the domain answered with SERVFAIL
	noPolicyHost bool
	contentType  string
	body         string
	wrongCert    bool // the policy host's certificate names another host
	stall        bool // the policy host never finishes the TLS handshake
	bodyStall    bool // the policy host sends the body, but never ends it
}

func discoveryCases() []discoveryCase {
	return []discoveryCase{
		{"good", nil, []string{}, nil, nil},
		{"othertxt", func(d *fakeDomain) {
			// Not MTA-STS records: discarded before counting (RFC 8461 §3.1).
			d.sts = append(d.sts, "google-site-verification=abc", "v=STSv10; id=2")
		}, []string{}, nil, nil},
		{"stsversion", func(d *fakeDomain) { d.sts = []string{"v=STSv10; id=2"} },
			[]string{"mta-sts-missing"}, nil, nil},
		{"stssyntax", func(d *fakeDomain) { d.sts = []string{"v=STSv1; id=not-alnum!"} },
			[]string{"mta-sts-invalid-record"}, map[string]string{"mta-sts-invalid-record": "letters or digits"}, nil},
		{"stsnoid", func(d *fakeDomain) { d.sts = []string{"v=STSv1;"} },
			[]string{"mta-sts-invalid-record"}, map[string]string{"mta-sts-invalid-record": "no id field"}, nil},
		// A failed lookup is not "no record": no mta-sts-missing.
		{"stsservfail", func(d *fakeDomain) { d.fail = append(d.fail, "_mta-sts") },
			[]string{"mta-sts-invalid-record"}, map[string]string{"mta-sts-invalid-record": "TXT lookup failed"}, nil},
		{"stsnoaddr", func(d *fakeDomain) { d.noPolicyHost = true },
			[]string{"mta-sts-fetch-failed"}, map[string]string{"mta-sts-fetch-failed": "has no address"}, nil},
		{"stsaddrfail", func(d *fakeDomain) { d.fail = append(d.fail, "mta-sts") },
			[]string{"mta-sts-fetch-failed"}, map[string]string{"mta-sts-fetch-failed": "SERVFAIL"}, nil},
		{"stsbadcert", func(d *fakeDomain) { d.wrongCert = true },
			[]string{"mta-sts-fetch-failed"}, map[string]string{"mta-sts-fetch-failed": ": certificate: "}, nil},
		{"stshtml", func(d *fakeDomain) { d.contentType = "text/html" },
			[]string{"mta-sts-fetch-failed"}, map[string]string{"mta-sts-fetch-failed": ": content-type: "}, nil},
		{"stsbig", func(d *fakeDomain) { d.body = strings.Repeat("#", MaxPolicySize+1) },
			[]string{"mta-sts-fetch-failed"}, map[string]string{"mta-sts-fetch-failed": ": size: "}, nil},
		{"stsstall", func(d *fakeDomain) { d.stall = true },
			[]string{"mta-sts-fetch-failed"}, map[string]string{"mta-sts-fetch-failed": ": timeout: "}, nil},
		// Everything a valid policy needs, but the body never ends: a
		// fetch cut off by its deadline is a failure, not a policy.
		{"stsbodystall", func(d *fakeDomain) { d.bodyStall = true },
			[]string{"mta-sts-fetch-failed"}, map[string]string{"mta-sts-fetch-failed": ": timeout: "}, nil},
		{"stsmismatchtesting", func(d *fakeDomain) {
			d.body = "version: STSv1\nmode: testing\nmx: other.example.test\nmax_age: 86400\n"
		}, []string{"mta-sts-mx-mismatch", "mta-sts-testing"}, nil, map[string]check.Severity{"mta-sts-mx-mismatch": check.Medium}},
		{"rpttwo", func(d *fakeDomain) { d.rpt = append(d.rpt, "v=TLSRPTv1; rua=mailto:other@example.test") },
			[]string{"tlsrpt-invalid"}, map[string]string{"tlsrpt-invalid": "2 records begin with v=TLSRPTv1"}, nil},
		{"rptservfail", func(d *fakeDomain) { d.fail = append(d.fail, "_smtp._tls") },
			[]string{"tlsrpt-invalid"}, map[string]string{"tlsrpt-invalid": "TXT lookup failed"}, nil},
		{"rptnone", func(d *fakeDomain) { d.rpt = nil }, []string{"tlsrpt-missing"}, nil, nil},
		{"rptother", func(d *fakeDomain) { d.rpt = append(d.rpt, "v=spf1 -all", "v=TLSRPTv10; rua=mailto:x@example.test") },
			[]string{}, nil, nil},
		// One record in several strings is their concatenation (RFC 8461 §3.1).
		{"stssplit", func(d *fakeDomain) {
			d.sts = nil
			d.extra = append(d.extra, "_mta-sts."+d.name+`. TXT "v=STSv1; " "id=split1"`)
		}, []string{}, nil, nil},
		// The policy host may be an alias; the URL's name stays the TLS name.
		{"stshostcname", func(d *fakeDomain) {
			d.noPolicyHost = true
			d.extra = append(d.extra, "mta-sts."+d.name+". CNAME policy.example.test.")
		}, []string{}, nil, nil},
		// RFC 7672 §2.2.2: with a secure CNAME the TLSA base domain is the
		// expanded name, the initial name only after a secure "none there".
		{"tlsacname", func(d *fakeDomain) {
			d.cnameMX()
			d.extra = append(d.extra, d.tlsaOwner("real")+" TLSA "+d.tlsa3)
		}, []string{}, nil, nil},
		{"tlsainitial", func(d *fakeDomain) {
			d.cnameMX()
			d.extra = append(d.extra, d.tlsaOwner("mx")+" TLSA "+d.tlsa3)
		}, []string{}, nil, nil},
		// A failed lookup at the expanded name is indeterminate (§2.1.1):
		// DANE senders defer, and must not fall back to the initial name.
		{"tlsacnamefail", func(d *fakeDomain) {
			d.cnameMX()
			d.fail = append(d.fail, "_"+strconv.Itoa(d.port)+"._tcp.real")
		}, []string{"dns-error"}, map[string]string{"dns-error": "DANE senders defer"}, nil},
		{"tlsacnamefailinitial", func(d *fakeDomain) {
			d.cnameMX()
			d.fail = append(d.fail, "_"+strconv.Itoa(d.port)+"._tcp.real")
			d.extra = append(d.extra, d.tlsaOwner("mx")+" TLSA "+d.tlsa3)
		}, []string{"dns-error"}, map[string]string{"dns-error": "DANE senders defer"}, nil},
	}
}

// cnameMX makes the MX mx.DOMAIN, an alias of real.DOMAIN.
func (d *fakeDomain) cnameMX() {
	d.mx = "mx." + d.name
	d.extra = append(d.extra, d.mx+". CNAME real."+d.name+".", "real."+d.name+". A 127.0.0.1")
}

func (d *fakeDomain) tlsaOwner(sub string) string {
	return "_" + strconv.Itoa(d.port) + "._tcp." + sub + "." + d.name + "."
}

// TestDiscovery runs the whole check (Run: DNS, MX check, policy fetch,
// judge) against the fake world, one domain per discovery path.
func TestDiscovery(t *testing.T) {
	ca, err := certs.NewCA("discovery test CA")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(hosts ...string) *certs.Leaf {
		l, err := ca.Issue(certs.LeafOptions{Hosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel) // parallel subtests outlive this function's body
	// The MX certificate must name every domain's MX host, and the cases
	// need the port: the listener comes first, the server once the
	// certificate exists.
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	smtpPort := ml.Addr().(*net.TCPAddr).Port
	cases := discoveryCases()
	mxNames := []string{"mx.example.test"}
	for _, c := range cases {
		d := &fakeDomain{name: c.label + ".example.test", mx: "mx.example.test", port: smtpPort}
		if c.edit != nil {
			c.edit(d)
		}
		if !slices.Contains(mxNames, d.mx) {
			mxNames = append(mxNames, d.mx)
		}
	}
	mxLeaf := issue(mxNames...)
	spki := sha256.Sum256(mxLeaf.Cert.RawSubjectPublicKeyInfo)
	tlsa3 := "3 1 1 " + hex.EncodeToString(spki[:])

	records := []string{"mx.example.test. A 127.0.0.1", "policy.example.test. A 127.0.0.1"}
	var fail []string
	domains := map[string]*fakeDomain{} // by policy host name
	byLabel := map[string]*fakeDomain{}
	var stsNames []string
	for _, c := range cases {
		dom := c.label + ".example.test"
		d := &fakeDomain{name: dom, mx: "mx.example.test", port: smtpPort, tlsa3: tlsa3,
			sts: []string{"v=STSv1; id=" + c.label}, rpt: []string{"v=TLSRPTv1; rua=mailto:tlsrpt@" + dom},
			contentType: "text/plain; charset=utf-8", body: "version: STSv1\nmode: enforce\nmx: mx.example.test\nmx: *." + dom + "\nmax_age: 86400\n"}
		if c.edit != nil {
			c.edit(d)
		}
		records = append(records, dom+". MX 10 "+d.mx+".")
		records = append(records, d.extra...)
		for _, s := range d.sts {
			records = append(records, "_mta-sts."+dom+". TXT "+strconv.Quote(s))
		}
		for _, s := range d.rpt {
			records = append(records, "_smtp._tls."+dom+". TXT "+strconv.Quote(s))
		}
		if !d.noPolicyHost {
			records = append(records, "mta-sts."+dom+". A 127.0.0.1")
		}
		for _, l := range d.fail {
			fail = append(fail, l+"."+dom)
		}
		domains["mta-sts."+dom] = d
		byLabel[c.label] = d
		stsNames = append(stsNames, "mta-sts."+dom)
	}
	// AD on every answer from a loopback resolver: everything is
	// DNSSEC-secure, so TLSA records count.
	res := startFakeDNS(t, true, fail, records...)
	mx, err := serve.Start(ctx, serve.Options{Protocol: starttls.SMTP, Listener: ml,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{mxLeaf.TLS}},
		Policy:    starttls.Optional, Hostname: "mx.example.test", IdleTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mx.Close() })

	good, wrong := issue(stsNames...), issue("www.example.test")
	stop := make(chan struct{})
	hs := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.Host)
		d, ok := domains[host]
		if !ok || r.URL.Path != PolicyPath {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", d.contentType)
		_, _ = io.WriteString(w, d.body)
		if d.bodyStall {
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-stop:
			case <-time.After(30 * time.Second):
			}
		}
	}))
	hs.TLS = &tls.Config{GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		d := domains[hello.ServerName]
		switch {
		case d == nil:
			return nil, errors.New("unknown server name")
		case d.stall:
			select {
			case <-hello.Context().Done():
			case <-stop:
			case <-time.After(30 * time.Second):
			}
			return nil, errors.New("stalled")
		case d.wrongCert:
			return &wrong.TLS, nil
		}
		return &good.TLS, nil
	}}
	// The rejected and stalled handshakes are the point, not news.
	hs.Config.ErrorLog = log.New(io.Discard, "", 0)
	hs.StartTLS()
	t.Cleanup(hs.Close)
	t.Cleanup(func() { close(stop) }) // before hs.Close: cleanups run last first
	httpsPort := hs.Listener.Addr().(*net.TCPAddr).Port

	// The policy fetch may take 6 × Timeout: the stalled host costs 3 s.
	o := Options{Resolver: &Resolver{Addr: res.addr, Timeout: 2 * time.Second}, Roots: ca.Pool(),
		SMTPPort: smtpPort, HTTPSPort: httpsPort, Timeout: 500 * time.Millisecond}
	for _, c := range cases {
		t.Run(c.label, func(t *testing.T) {
			t.Parallel()
			r := Run(ctx, c.label+".example.test", o)
			got := r.IDs()
			slices.Sort(got)
			if !slices.Equal(got, c.want) || r.Status != StatusOK {
				t.Errorf("findings %v status %s (%s), want %v", got, r.Status, r.Error, c.want)
			}
			// A clean domain with TLSA records is clean because DANE passed,
			// at the owner name the case published.
			for _, rec := range byLabel[c.label].extra {
				owner, _, isTLSA := strings.Cut(rec, " TLSA ")
				if !isTLSA || len(c.want) > 0 {
					continue
				}
				if hd := r.MX.Hosts[0].DANE; !r.DANE.Enabled || hd == nil || hd.Verdict != DANEPass || hd.Name+"." != owner {
					t.Errorf("DANE enabled %v, host %+v; want pass at %s", r.DANE.Enabled, hd, owner)
				}
			}
			for _, f := range r.Findings {
				if ev, ok := c.evidence[f.ID]; ok && !strings.Contains(f.Evidence, ev) {
					t.Errorf("%s evidence %q lacks %q", f.ID, f.Evidence, ev)
				}
				if s, ok := c.sev[f.ID]; ok && f.Severity != s {
					t.Errorf("%s at %s, want %s", f.ID, f.Severity, s)
				}
				t.Logf("%s %s: %s", f.Severity, f.ID, f.Evidence)
			}
		})
	}
}
