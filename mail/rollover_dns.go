package mail

import (
	"context"
	"crypto/x509"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"golang.org/x/sync/errgroup"
)

// RolloverReport answers "will DANE still work once the next certificate
// is deployed on the MX hosts, and what must be published first?"
type RolloverReport struct {
	Domain    string `json:"domain"`
	Resolver  string `json:"resolver"`
	ADTrusted bool   `json:"ad_trusted"`
	// Status is "ok" or "dns-error" (no MX answer).
	Status string `json:"status"`
	Error  string `json:"error,omitempty"`
	// NextTLSA is 3 1 1 of the next key.
	NextTLSA string `json:"next_tlsa"`
	// NextSubject and NextNotAfter describe the next leaf (empty for a key).
	NextSubject  string          `json:"next_subject,omitempty"`
	NextNotAfter *time.Time      `json:"next_not_after,omitempty"`
	Hosts        []*RolloverHost `json:"hosts"`
	// Ready: every MX host with DNSSEC-secure usable TLSA records has one
	// that will match the next certificate.
	Ready bool `json:"ready"`
}

// RolloverHost is one MX host's TLSA RRset and plan.
type RolloverHost struct {
	Name string `json:"name"`
	// TLSAName is where the records were found (_PORT._tcp.BASE), "" when none.
	TLSAName string `json:"tlsa_name,omitempty"`
	Secure   bool   `json:"secure"`
	TTL      uint32 `json:"ttl,omitempty"`
	// Served says whether the current chain could be fetched from the host.
	Served string    `json:"served,omitempty"`
	Plan   *HostPlan `json:"plan,omitempty"`
	// Verdict: "ready", "publish-first", "no-tlsa", "insecure" (records
	// without DNSSEC: DANE is not in effect, the plan is still given),
	// "unknown" (only a key was given and the records are DANE-TA),
	// "dns-error".
	Verdict string `json:"verdict"`
	Detail  string `json:"detail,omitempty"`
}

// Rollover verdicts.
const (
	RolloverReady        = "ready"
	RolloverPublishFirst = "publish-first"
	RolloverNoTLSA       = "no-tlsa"
	RolloverInsecure     = "insecure"
	RolloverDNSError     = "dns-error"
	RolloverUnknown      = "unknown"
)

// Rollover looks up the MX hosts of domain and each one's TLSA records,
// fetches the chain each serves now, and plans the TLSA changes for
// deploying next (PlanRollover).
func Rollover(ctx context.Context, domain string, next *Next, o Options) *RolloverReport {
	o = o.withDefaults()
	r := &RolloverReport{Domain: domain, Status: StatusOK, Hosts: []*RolloverHost{}, NextTLSA: next.TLSA311().String()}
	if len(next.Chain) > 0 {
		na := next.Chain[0].NotAfter.UTC()
		r.NextSubject, r.NextNotAfter = next.Chain[0].Subject.String(), &na
	}
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
	// The MX lookup of the mail check, without its findings.
	c := &run{o: o, r: &Report{Domain: d, Status: StatusOK, MX: MXInfo{Hosts: []*MXHost{}}, Findings: []Finding{}}}
	if !c.lookupMX(ctx) {
		r.Status, r.Error = c.r.Status, c.r.Error
		if r.Error == "" && c.r.MX.NullMX {
			r.Error = "null MX: the domain takes no mail"
		}
		return r
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	r.Hosts = make([]*RolloverHost, len(c.r.MX.Hosts))
	for i, h := range c.r.MX.Hosts {
		g.Go(func() error {
			rh := rolloverHost(gctx, h, c.r.MX.Secure, next, o)
			mu.Lock()
			r.Hosts[i] = rh
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	r.Ready = true
	for _, h := range r.Hosts {
		if h.Verdict == RolloverPublishFirst || h.Verdict == RolloverDNSError || h.Verdict == RolloverUnknown {
			r.Ready = false
		}
	}
	return r
}

func rolloverHost(ctx context.Context, h *MXHost, mxSecure bool, next *Next, o Options) *RolloverHost {
	rh := &RolloverHost{Name: h.Name}
	addrs, final, secure, aerr := o.Resolver.Addresses(ctx, h.Name)
	bases := []string{h.Name}
	if cname := strings.TrimSuffix(final, "."); cname != h.Name && secure {
		bases = []string{cname, h.Name}
	}
	var records []TLSA
	var base string
	for _, b := range bases {
		name := fmt.Sprintf("_%d._tcp.%s", o.SMTPPort, b)
		a, err := o.Resolver.Query(ctx, name, dns.TypeTLSA)
		if err != nil {
			// Indeterminate: DANE senders defer (RFC 7672 §2.1.1).
			rh.Verdict, rh.Detail = RolloverDNSError, err.Error()
			return rh
		}
		if len(a.RRs) == 0 {
			continue
		}
		rh.TLSAName, base = name, b
		rh.Secure = a.Secure && mxSecure && secure
		for _, rr := range a.RRs {
			t := rr.(*dns.TLSA)
			records = append(records, NewTLSA(t.Usage, t.Selector, t.MatchingType, t.Certificate))
			rh.TTL = t.Hdr.Ttl
		}
		break
	}
	if len(records) == 0 {
		rh.Verdict, rh.Detail = RolloverNoTLSA, "no TLSA records: DANE does not constrain the next certificate"
		return rh
	}
	var current []*x509.Certificate
	switch {
	case len(addrs) == 0:
		rh.Served = "no address"
		if aerr != nil {
			rh.Served += ": " + aerr.Error()
		}
	default:
		chain, err := servedChain(ctx, net.JoinHostPort(addrs[0], strconv.Itoa(o.SMTPPort)), base, o)
		if err != nil {
			rh.Served = "could not fetch the current chain: " + err.Error()
		} else {
			current, rh.Served = chain, "fetched from "+addrs[0]
		}
	}
	rh.Plan = PlanRollover(records, current, next, []string{base, h.Name}, rh.TTL, o.Now())
	switch {
	case !rh.Secure:
		rh.Verdict, rh.Detail = RolloverInsecure, "the TLSA records are not DNSSEC-secure: DANE senders ignore them"
	case rh.Plan.Ready:
		rh.Verdict = RolloverReady
	case rh.Plan.Undecided:
		rh.Verdict, rh.Detail = RolloverUnknown, "only the key was given and the usable records are DANE-TA: give --next-cert with its chain"
	default:
		rh.Verdict = RolloverPublishFirst
	}
	return rh
}
