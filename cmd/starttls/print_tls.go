package main

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/starttls-go/starttls/check"
)

// printVulnsAndFacts writes the "Vulnerabilities" and "TLS facts" sections
// of a check report; each is left out when the check measured none.
func printVulnsAndFacts(p *printer, t check.TLSInfo) {
	printVulnerabilities(p, t.Vulnerabilities)
	printTLSFacts(p, t)
}

func printVulnerabilities(p *printer, vs map[string]string) {
	if len(vs) == 0 {
		return
	}
	p.section("Vulnerabilities")
	for _, id := range slices.Sorted(maps.Keys(vs)) {
		p.line("  %-24s %s", id, vulnColor(p, vs[id]))
	}
}

func vulnColor(p *printer, v string) string {
	switch {
	case v == check.Vulnerable:
		return p.red(v)
	case v == check.NotVulnerable:
		return p.green(v)
	case strings.HasPrefix(v, "error"):
		return p.yellow(v)
	}
	return p.dim(v)
}

func factYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// printTLSFacts writes every measured fact; a nil or empty one was not
// measured and is left out rather than shown as "no".
func printTLSFacts(p *printer, t check.TLSInfo) {
	f := t.Facts
	if f == nil {
		return
	}
	p.section("TLS facts")
	row := func(name, format string, args ...any) {
		p.line("  %-24s "+format, append([]any{name}, args...)...)
	}
	if f.SecureRenegotiation != nil {
		v := factYesNo(*f.SecureRenegotiation)
		if !*f.SecureRenegotiation {
			v = p.red(v)
		}
		row("secure renegotiation", "%s", v)
	}
	for _, b := range []struct {
		name string
		v    *bool
	}{{"session id issued", f.SessionIDIssued}, {"resumption (session id)", f.ResumptionID}, {"resumption (ticket)", f.ResumptionTicket}, {"must-staple", f.MustStaple}} {
		if b.v != nil {
			row(b.name, "%s", factYesNo(*b.v))
		}
	}
	if f.TicketLifetimeS != nil {
		row("ticket lifetime", "%d s", *f.TicketLifetimeS)
	}
	if len(f.SCTs) > 0 {
		var parts []string
		for _, src := range slices.Sorted(maps.Keys(f.SCTs)) {
			parts = append(parts, fmt.Sprintf("%s %d", src, f.SCTs[src]))
		}
		row("SCTs", "%s", strings.Join(parts, ", "))
	}
	if f.DHGroupBits > 0 || f.DHGroup != "" {
		g := fmt.Sprintf("%d bits", f.DHGroupBits)
		if f.DHGroup != "" {
			g += " (" + f.DHGroup + ")"
		}
		row("DH group", "%s", g)
	}
	if len(f.ECPointFormats) > 0 {
		row("EC point formats", "%s", strings.Join(f.ECPointFormats, ", "))
	}
	switch {
	case len(f.Compression) > 0:
		row("compression", "%s", p.red(strings.Join(f.Compression, ", ")))
	case t.Vulnerabilities["tls-compression"] == check.NotVulnerable:
		row("compression", "%s", "null only")
	}
	if f.FirstFlight {
		row("first flight", "%s", "certificate and key exchange read from the server's first flight (crypto/tls could not finish the handshake)")
	}
}
