// Package mail judges a mail domain's transport security as a sending MTA
// sees it: the MX hosts (RFC 5321, null MX RFC 7505), STARTTLS on each
// (through the check engine), MTA-STS (RFC 8461), DANE (RFC 7672 and RFC
// 6698, trusted only from a validating resolver's AD bit), TLS-RPT (RFC
// 8460) and REQUIRETLS (RFC 8689). All DNS goes through one configurable
// resolver, so tests can point it at a local validating unbound.
package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/net/idna"
	"golang.org/x/sync/errgroup"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// Options configure a mail check.
type Options struct {
	// Resolver answers every DNS question; required.
	Resolver *Resolver
	// Roots verify MX and MTA-STS certificates; nil means the system pool.
	Roots *x509.CertPool
	// SMTPPort is where MX hosts are checked (and the TLSA port). Default 25.
	SMTPPort int
	// HTTPSPort is where the MTA-STS policy is fetched. Default 443.
	HTTPSPort int
	// Timeout bounds each phase of each connection. Default 10 s.
	Timeout time.Duration
	// Depth of each MX check: check.Quick (default) or check.Full.
	Depth string
	// Concurrency bounds MX hosts checked at once. Default 4.
	Concurrency int
	// MaxHosts bounds the MX hosts examined. Default 10.
	MaxHosts int
	// LocalName is the EHLO name. Default "localhost".
	LocalName string
	// Now is the clock for certificate dates; default time.Now.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.SMTPPort == 0 {
		o.SMTPPort = 25
	}
	if o.HTTPSPort == 0 {
		o.HTTPSPort = 443
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Depth == "" {
		o.Depth = check.Quick
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if o.MaxHosts <= 0 {
		o.MaxHosts = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// NormalizeDomain turns a domain given by a user (U-labels, trailing dot,
// capitals) into lower-case A-labels without the trailing dot.
func NormalizeDomain(d string) (string, error) {
	d = strings.TrimSuffix(strings.TrimSpace(d), ".")
	if d == "" {
		return "", fmt.Errorf("empty domain")
	}
	a, err := idna.Lookup.ToASCII(d)
	if err != nil {
		return "", fmt.Errorf("domain %q: %w", d, err)
	}
	if _, ok := dns.IsDomainName(a); !ok {
		return "", fmt.Errorf("domain %q is not a valid name", d)
	}
	return strings.ToLower(a), nil
}

// run is one domain's check in progress.
type run struct {
	o  Options
	r  *Report
	mu sync.Mutex // guards r.Findings

	stsLookupFailed bool // the _mta-sts TXT query got no answer
}

func (c *run) add(f Finding) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.Findings = append(c.r.Findings, f)
}

// Run checks one domain. It always returns a report; Status says whether
// DNS answered and any MX could be reached.
func Run(ctx context.Context, domain string, o Options) *Report {
	o = o.withDefaults()
	start := time.Now()
	r := &Report{Schema: Schema, Domain: domain, StartedAt: start.UTC(), Status: StatusOK,
		MX: MXInfo{Hosts: []*MXHost{}}, MTASTS: MTASTS{Records: []string{}}, TLSRPT: TLSRPT{Records: []string{}}, Findings: []Finding{}}
	c := &run{o: o, r: r}
	defer func() {
		sort.SliceStable(r.Findings, func(i, j int) bool {
			if r.Findings[i].Severity != r.Findings[j].Severity {
				return r.Findings[i].Severity > r.Findings[j].Severity
			}
			return r.Findings[i].ID < r.Findings[j].ID
		})
		r.Grade = Grade(r)
		r.TotalMS = float64(time.Since(start).Microseconds()) / 1000
	}()
	if o.Resolver == nil {
		r.Status, r.Error = StatusDNSError, "no resolver configured"
		return r
	}
	r.Resolver, r.ADTrusted = o.Resolver.Addr, o.Resolver.ADTrusted()
	d, err := NormalizeDomain(domain)
	if err != nil {
		r.Status, r.Error = StatusDNSError, err.Error()
		return r
	}
	r.Domain = d
	if !c.lookupMX(ctx) {
		return r
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.mtaSTS(ctx) }()
	go func() { defer wg.Done(); c.tlsRPT(ctx) }()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, h := range r.MX.Hosts {
		g.Go(func() error { c.host(gctx, h); return nil })
	}
	_ = g.Wait()
	wg.Wait()
	c.judge()
	return r
}

// lookupMX fills r.MX; false means there is nothing more to check.
func (c *run) lookupMX(ctx context.Context) bool {
	r, res := c.r, c.o.Resolver
	a, err := res.Query(ctx, r.Domain, dns.TypeMX)
	if err != nil {
		r.Status, r.Error = StatusDNSError, err.Error()
		c.add(newFinding("dns-error", err.Error()))
		return false
	}
	if a.NXDomain() {
		r.Status, r.Error = StatusDNSError, r.Domain+": NXDOMAIN"
		c.add(newFinding("domain-not-found", fmt.Sprintf("the resolver %s answered NXDOMAIN for %s MX", res.Addr, r.Domain)))
		return false
	}
	r.MX.Secure = a.Secure
	var null bool
	for _, rr := range a.RRs {
		mx := rr.(*dns.MX)
		if mx.Mx == "." {
			null = true
			continue
		}
		r.MX.Hosts = append(r.MX.Hosts, &MXHost{Name: strings.ToLower(strings.TrimSuffix(mx.Mx, ".")), Preference: mx.Preference, Addresses: []string{}})
	}
	switch {
	case null && len(r.MX.Hosts) == 0:
		r.MX.NullMX, r.Status = true, StatusNoMail
		c.add(newFinding("null-mx", fmt.Sprintf("%s MX 0 . (secure: %v)", r.Domain, a.Secure)))
		return false
	case null:
		r.MX.NullMX = true
		c.add(newFinding("null-mx-invalid", fmt.Sprintf("%s has MX 0 . and %d other MX record(s)", r.Domain, len(r.MX.Hosts))))
	case len(r.MX.Hosts) == 0:
		r.MX.Implicit = true
		r.MX.Hosts = append(r.MX.Hosts, &MXHost{Name: r.Domain, Addresses: []string{}})
	}
	sort.SliceStable(r.MX.Hosts, func(i, j int) bool {
		hi, hj := r.MX.Hosts[i], r.MX.Hosts[j]
		if hi.Preference != hj.Preference {
			return hi.Preference < hj.Preference
		}
		return hi.Name < hj.Name
	})
	if len(r.MX.Hosts) > c.o.MaxHosts {
		r.MX.Hosts = r.MX.Hosts[:c.o.MaxHosts]
	}
	return true
}

// host resolves, checks and DANE-verifies one MX host.
func (c *run) host(ctx context.Context, h *MXHost) {
	o := c.o
	addrs, final, secure, err := o.Resolver.Addresses(ctx, h.Name)
	h.Addresses = append(h.Addresses, addrs...)
	h.Secure = secure
	if final != dns.Fqdn(h.Name) {
		h.CNAME = strings.TrimSuffix(final, ".")
	}
	if len(addrs) == 0 {
		ev := h.Name + " has no A or AAAA record"
		if err != nil {
			ev += ": " + err.Error()
		}
		c.add(newFinding("mx-no-address", ev))
		return
	}
	if c.r.MX.Implicit {
		c.add(newFinding("no-mx", fmt.Sprintf("%s has no MX; its addresses %s take mail", h.Name, strings.Join(addrs, ", "))))
	}
	co := check.Options{Roots: o.Roots, ServerName: h.Name, Timeout: o.Timeout, Depth: o.Depth, LocalName: o.LocalName, Now: o.Now}
	for i, a := range addrs {
		if i >= 4 {
			break
		}
		rep := check.Run(ctx, starttls.Target{Protocol: starttls.SMTP, Host: a, Port: o.SMTPPort}, co)
		h.Check, h.Checked = rep, a
		if rep.Status != starttls.StatusConnectRefused && rep.Status != starttls.StatusConnectTimeout {
			break
		}
	}
	rep := h.Check
	h.STARTTLS = rep.StartTLS.Upgraded
	h.CertValid = h.STARTTLS && rep.Certificate.Verification.OK
	h.RequireTLS = h.STARTTLS && starttls.Capabilities(rep.StartTLS.CapabilitiesAfter).Has("REQUIRETLS")
	c.dane(ctx, h)
}

// reachable says whether the host answered at the SMTP level at all.
func (h *MXHost) reachable() bool {
	if h.Check == nil {
		return false
	}
	switch h.Check.Status {
	case starttls.StatusConnectRefused, starttls.StatusConnectTimeout:
		return false
	}
	return true
}

// dane looks up TLSA for the host (RFC 7672 §2.2.2: the CNAME-expanded
// name first when the whole chain is secure, then the MX name) and
// verifies the records against the chain the host serves.
func (c *run) dane(ctx context.Context, h *MXHost) {
	o := c.o
	bases := []string{h.Name}
	if h.CNAME != "" && h.Secure {
		bases = []string{h.CNAME, h.Name}
	}
	hd := &HostDANE{Verdict: DANENone, Records: []TLSA{}}
	var lookupErrs []string
	for _, base := range bases {
		name := fmt.Sprintf("_%d._tcp.%s", o.SMTPPort, base)
		a, err := o.Resolver.Query(ctx, name, dns.TypeTLSA)
		if err != nil {
			// Indeterminate, not "no records": the next base may be tried
			// only after a secure denial here, so a DANE sender defers
			// rather than fall back to the MX name (RFC 7672 §2.1.1, §2.2.2).
			lookupErrs = append(lookupErrs, err.Error())
			hd.Detail = err.Error()
			break
		}
		if len(a.RRs) == 0 {
			continue
		}
		hd.Name, hd.Base = name, base
		hd.Secure = a.Secure && c.r.MX.Secure && h.Secure
		for _, rr := range a.RRs {
			t := rr.(*dns.TLSA)
			hd.Records = append(hd.Records, NewTLSA(t.Usage, t.Selector, t.MatchingType, t.Certificate))
		}
		break
	}
	if len(hd.Records) == 0 {
		if len(lookupErrs) > 0 {
			// Bogus or indeterminate: DANE senders defer (RFC 7672 §2.1).
			h.DANE = hd
			c.add(newFinding("dns-error", "TLSA lookup failed, DANE senders defer mail to "+h.Name+": "+strings.Join(lookupErrs, "; ")))
		}
		return
	}
	h.DANE = hd
	usable := false
	for _, t := range hd.Records {
		usable = usable || t.Usable
	}
	switch {
	case !hd.Secure:
		hd.Verdict = DANEInsecure
		return
	case !usable:
		hd.Verdict = DANEUnusable
		return
	case !h.STARTTLS:
		hd.Verdict = DANENoTLS
		return
	}
	chain, err := servedChain(ctx, net.JoinHostPort(h.Checked, strconv.Itoa(o.SMTPPort)), hd.Base, o)
	if err != nil {
		hd.Verdict, hd.Detail = DANEFail, "could not get the served chain: "+err.Error()
		return
	}
	ok, why := VerifyDANE(hd.Records, chain, []string{hd.Base, h.Name}, o.Now())
	hd.Verdict, hd.Detail = DANEFail, why
	if ok {
		hd.Verdict, hd.Detail = DANEPass, ""
	}
}

// servedChain runs STARTTLS with SNI set to the TLSA base domain (RFC
// 7672 §8.1) and returns the chain as served, unverified.
func servedChain(ctx context.Context, addr, sni string, o Options) ([]*x509.Certificate, error) {
	conn, err := starttls.Dial(ctx, starttls.SMTP, addr, &starttls.Config{
		TLSConfig:    &tls.Config{ServerName: sni, InsecureSkipVerify: true}, // verified by VerifyDANE
		PhaseTimeout: o.Timeout, LocalName: o.LocalName,
	})
	if err != nil {
		return nil, err
	}
	chain := conn.ConnectionState().PeerCertificates
	qctx, cancel := context.WithTimeout(ctx, o.Timeout)
	_ = conn.Quit(qctx)
	cancel()
	conn.Close()
	return chain, nil
}
