package mail

import (
	"context"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/check"
)

// mtaSTS discovers and fetches the policy (RFC 8461 §3). Findings that
// depend on the MX hosts are made in judge.
func (c *run) mtaSTS(ctx context.Context) {
	r, o := c.r, c.o
	m := &r.MTASTS
	txts, _, err := o.Resolver.TXT(ctx, "_mta-sts."+r.Domain)
	if err != nil {
		m.Error = err.Error()
		c.stsLookupFailed = true
		c.add(newFinding("mta-sts-invalid-record", "the TXT lookup failed: "+err.Error()))
		return
	}
	for _, t := range txts {
		if isSTSCandidate(t) {
			m.Records = append(m.Records, t)
		}
	}
	switch len(m.Records) {
	case 0:
		m.Error = "no _mta-sts TXT record beginning with v=STSv1"
		// The finding waits for judge: its severity depends on DANE.
		return
	case 1:
	default:
		m.Error = fmt.Sprintf("%d records begin with v=STSv1; exactly one is allowed", len(m.Records))
		c.add(newFinding("mta-sts-invalid-record", fmt.Sprintf("_mta-sts.%s: %s: %q", r.Domain, m.Error, m.Records)))
		return
	}
	rec, err := ParseSTSRecord(m.Records[0])
	if err != nil {
		m.Error = err.Error()
		c.add(newFinding("mta-sts-invalid-record", fmt.Sprintf("_mta-sts.%s %q: %v", r.Domain, m.Records[0], err)))
		return
	}
	m.Record = rec
	host := "mta-sts." + r.Domain
	m.URL = PolicyURL(host, o.HTTPSPort)
	addrs, _, _, err := o.Resolver.Addresses(ctx, host)
	m.Addresses = addrs
	if err != nil || len(addrs) == 0 {
		m.Error = fmt.Sprintf("%s has no address", host)
		if err != nil {
			m.Error += ": " + err.Error()
		}
		c.add(newFinding("mta-sts-fetch-failed", m.Error))
		return
	}
	body, err := FetchPolicy(ctx, FetchOptions{Host: host, Port: o.HTTPSPort, Addrs: addrs, Roots: o.Roots, Timeout: 6 * o.Timeout})
	if err != nil {
		m.Error = err.Error()
		c.add(newFinding("mta-sts-fetch-failed", fmt.Sprintf("GET %s: %v", m.URL, err)))
		return
	}
	m.Body = string(body)
	p, err := ParsePolicy(body)
	if err != nil {
		m.Error = err.Error()
		m.Policy = p
		c.add(newFinding("mta-sts-invalid-policy", fmt.Sprintf("%s: %v", m.URL, err)))
		return
	}
	m.Policy, m.Mode = p, p.Mode
	switch p.Mode {
	case ModeTesting:
		c.add(newFinding("mta-sts-testing", fmt.Sprintf("%s: mode: testing (id %s)", m.URL, rec.ID)))
	case ModeNone:
		c.add(newFinding("mta-sts-mode-none", fmt.Sprintf("%s: mode: none (id %s)", m.URL, rec.ID)))
	}
}

// tlsRPT reads the _smtp._tls record (RFC 8460 §3).
func (c *run) tlsRPT(ctx context.Context) {
	r := c.r
	t := &r.TLSRPT
	name := "_smtp._tls." + r.Domain
	txts, _, err := c.o.Resolver.TXT(ctx, name)
	if err != nil {
		t.Error = err.Error()
		c.add(newFinding("tlsrpt-invalid", "the TXT lookup failed: "+err.Error()))
		return
	}
	for _, s := range txts {
		if hasVersion(s, "v=TLSRPTv1") {
			t.Records = append(t.Records, s)
		}
	}
	switch len(t.Records) {
	case 0:
		t.Error = "no " + name + " TXT record beginning with v=TLSRPTv1"
		c.add(newFinding("tlsrpt-missing", t.Error))
		return
	case 1:
	default:
		t.Error = fmt.Sprintf("%d records begin with v=TLSRPTv1; exactly one is allowed", len(t.Records))
		c.add(newFinding("tlsrpt-invalid", fmt.Sprintf("%s: %s: %q", name, t.Error, t.Records)))
		return
	}
	rec, err := ParseTLSRPTRecord(t.Records[0])
	if err != nil {
		t.Error = err.Error()
		c.add(newFinding("tlsrpt-invalid", fmt.Sprintf("%s %q: %v", name, t.Records[0], err)))
		return
	}
	t.Record = rec
}

// judge makes the findings that need every part: MX against policy, DANE
// verdicts, stripping.
func (c *run) judge() {
	r := c.r
	policy := r.MTASTS.Policy
	mode := r.MTASTS.Mode
	stsActive := mode == ModeEnforce || mode == ModeTesting
	stsSeverity := check.High
	if mode == ModeTesting {
		stsSeverity = check.Medium
	}

	// DANE per host and for the domain.
	allDANE := len(r.MX.Hosts) > 0
	for _, h := range r.MX.Hosts {
		hd := h.DANE
		if hd == nil || len(hd.Records) == 0 || !hd.Secure || hd.Verdict == DANEUnusable {
			allDANE = false
		}
		if hd == nil || len(hd.Records) == 0 {
			continue
		}
		var pkix, bad []string
		anyUsable := false
		for _, t := range hd.Records {
			switch {
			case t.Usable:
				anyUsable = true
			case t.Usage == UsagePKIXTA || t.Usage == UsagePKIXEE:
				pkix = append(pkix, t.String())
			default:
				bad = append(bad, t.String()+" ("+t.Problem+")")
			}
		}
		if len(pkix) > 0 {
			f := newFinding("dane-usage-not-recommended", fmt.Sprintf("%s: %s", hd.Name, strings.Join(pkix, "; ")))
			if !anyUsable {
				f = withSeverity(f, check.Medium)
			}
			c.add(f)
		}
		if len(bad) > 0 {
			c.add(newFinding("dane-tlsa-unusable", fmt.Sprintf("%s: %s", hd.Name, strings.Join(bad, "; "))))
		}
		switch hd.Verdict {
		case DANEInsecure:
			var why []string
			if !r.ADTrusted {
				why = append(why, "the resolver "+r.Resolver+" is not on loopback (use --trust-ad to believe its AD bit)")
			}
			if !r.MX.Secure {
				why = append(why, "the MX answer for "+r.Domain+" is not DNSSEC-secure")
			}
			if !h.Secure {
				why = append(why, "the address answer for "+h.Name+" is not DNSSEC-secure")
			}
			why = append(why, "TLSA "+hd.Name+" secure: "+fmt.Sprint(hd.Secure && r.ADTrusted))
			c.add(newFinding("dane-no-dnssec", fmt.Sprintf("%d TLSA record(s) at %s; %s", len(hd.Records), hd.Name, strings.Join(why, "; "))))
		case DANEFail:
			c.add(newFinding("dane-mismatch", fmt.Sprintf("%s (%s): %s", h.Name, h.Checked, hd.Detail)))
		}
	}
	r.DANE.Enabled = allDANE

	if len(r.MTASTS.Records) == 0 && !c.stsLookupFailed {
		f := newFinding("mta-sts-missing", "no _mta-sts."+r.Domain+" TXT record beginning with v=STSv1")
		if allDANE {
			f = withSeverity(f, check.Low)
		}
		c.add(f)
	}

	var stripped []string
	reachable := 0
	requireTLS := true
	for _, h := range r.MX.Hosts {
		if len(h.Addresses) == 0 {
			continue
		}
		if !h.reachable() {
			c.add(newFinding("mx-unreachable", fmt.Sprintf("%s (%s port %d): %s", h.Name, h.Checked, c.o.SMTPPort, h.Check.Error)))
			continue
		}
		reachable++
		hostDANE := h.DANE != nil && h.DANE.Secure && h.DANE.Verdict != DANEUnusable && h.DANE.Verdict != DANENone
		if policy != nil && stsActive {
			if pat, ok := policy.Matches(h.Name); ok {
				h.STSMatch = pat
			} else {
				c.add(withSeverity(newFinding("mta-sts-mx-mismatch",
					fmt.Sprintf("%s matches none of the policy's mx patterns %s (mode %s)", h.Name, strings.Join(policy.MX, ", "), mode)), stsSeverity))
			}
			if h.STARTTLS && !h.CertValid && !hostDANE {
				c.add(withSeverity(newFinding("mta-sts-mx-cert-invalid",
					fmt.Sprintf("%s (%s): %s (mode %s)", h.Name, h.Checked, h.Check.Certificate.Verification.Error, mode)), stsSeverity))
			}
		}
		if !h.STARTTLS {
			requireTLS = false
			why := string(h.Check.Status)
			if h.Check.Error != "" {
				why += ": " + h.Check.Error
			}
			if mode == ModeEnforce || hostDANE {
				by := "MTA-STS enforce"
				if hostDANE {
					by = "DANE TLSA " + h.DANE.Name
				}
				c.add(newFinding("mx-no-starttls", fmt.Sprintf("%s (%s): %s; required by %s", h.Name, h.Checked, why, by)))
			} else {
				stripped = append(stripped, fmt.Sprintf("%s (%s: %s)", h.Name, h.Checked, why))
			}
			continue
		}
		requireTLS = requireTLS && h.RequireTLS
	}
	if len(stripped) > 0 {
		c.add(newFinding("stripping-possible", fmt.Sprintf("without STARTTLS, and neither MTA-STS enforce nor DANE applies: %s", strings.Join(stripped, ", "))))
	}
	r.RequireTLS = reachable > 0 && requireTLS
	if reachable == 0 {
		r.Status = StatusUnreachable
		if r.Error == "" {
			r.Error = "no MX host could be reached"
		}
	}
}
