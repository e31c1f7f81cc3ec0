package watch

import (
	"slices"
	"sort"
	"strings"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/mail"
	"github.com/starttls-go/starttls/watch/store"
)

// unreachable are the statuses of a target that could not be talked to at
// all; the others are answers, however bad.
var unreachable = map[starttls.Status]bool{
	starttls.StatusConnectRefused: true, starttls.StatusConnectTimeout: true,
	starttls.StatusTimeout: true, starttls.StatusClosed: true, starttls.StatusError: true,
	"greeting-timeout": true,
}

// TargetSnapshot reduces a check report to what changes are computed from.
func TargetSnapshot(key string, r *check.Report) store.Snapshot {
	s := store.Snapshot{
		Subject: key, Kind: store.KindTarget, Name: r.Target, At: r.StartedAt,
		Status: string(r.Status), Reachable: !unreachable[r.Status], Grade: r.Grade, Error: r.Error,
		Findings: []store.Finding{},
	}
	s.Findings = appendFindings(s.Findings, "", r)
	s.Worst = worst(s.Findings)
	if c := leaf(r, ""); c != nil {
		s.Certs = []store.Cert{*c}
	}
	s.Versions, s.Suites = tlsSets("", r)
	return s
}

// DomainSnapshot reduces a mail report: the domain's findings and every
// MX host's, each host's certificate, versions and suites, the MTA-STS
// policy id and mode, the MX set and the DANE verdicts.
func DomainSnapshot(key string, r *mail.Report) store.Snapshot {
	s := store.Snapshot{
		Subject: key, Kind: store.KindDomain, Name: r.Domain, At: r.StartedAt,
		Status: r.Status, Reachable: r.Status != mail.StatusDNSError && r.Status != mail.StatusUnreachable,
		Grade: r.Grade, Error: r.Error, Findings: []store.Finding{}, MX: []string{}, STSMode: r.MTASTS.Mode,
	}
	for _, f := range r.Findings {
		s.Findings = append(s.Findings, store.Finding{ID: f.ID, Severity: f.Severity.String(), Title: f.Title})
	}
	if r.MTASTS.Record != nil {
		s.STSID = r.MTASTS.Record.ID
	}
	for _, h := range r.MX.Hosts {
		s.MX = append(s.MX, h.Name)
		if h.DANE != nil && h.DANE.Verdict != mail.DANENone {
			if s.TLSA == nil {
				s.TLSA = map[string]string{}
			}
			s.TLSA[h.Name] = h.DANE.Verdict
		}
		if h.Check == nil {
			continue
		}
		s.Findings = appendFindings(s.Findings, h.Name, h.Check)
		if c := leaf(h.Check, h.Name); c != nil {
			s.Certs = append(s.Certs, *c)
		}
		v, su := tlsSets(h.Name+": ", h.Check)
		s.Versions = append(s.Versions, v...)
		s.Suites = append(s.Suites, su...)
	}
	sort.Strings(s.MX)
	sort.Strings(s.Versions)
	sort.Strings(s.Suites)
	s.Worst = worst(s.Findings)
	return s
}

func appendFindings(out []store.Finding, host string, r *check.Report) []store.Finding {
	for _, f := range r.Findings {
		out = append(out, store.Finding{ID: f.ID, Severity: f.Severity.String(), Title: f.Title, Host: host})
	}
	return out
}

func leaf(r *check.Report, host string) *store.Cert {
	if len(r.Certificate.Chain) == 0 {
		return nil
	}
	c := r.Certificate.Chain[0]
	return &store.Cert{Host: host, SHA256: c.SHA256, Subject: c.Subject, NotAfter: c.NotAfter}
}

// tlsSets lists the accepted versions and suites; nil when the check did
// not enumerate them (a quick check measures versions only).
func tlsSets(prefix string, r *check.Report) (versions, suites []string) {
	for v, ok := range r.TLS.Versions {
		if ok {
			versions = append(versions, prefix+v)
		}
	}
	for v, list := range r.TLS.CipherSuites {
		for _, s := range list {
			suites = append(suites, prefix+v+" "+s)
		}
	}
	sort.Strings(versions)
	sort.Strings(suites)
	return versions, slices.Compact(suites)
}

func worst(fs []store.Finding) string {
	w, any := check.Info, false
	for _, f := range fs {
		s, _ := check.ParseSeverity(f.Severity)
		if !any || s > w {
			w, any = s, true
		}
	}
	if !any {
		return ""
	}
	return w.String()
}

// gradeRank orders grades, best highest; unknown grades rank lowest.
func gradeRank(g string) int {
	switch strings.TrimSpace(g) {
	case "A+":
		return 7
	case "A":
		return 6
	case "B":
		return 5
	case "C":
		return 4
	case "D":
		return 3
	case "E":
		return 2
	case "F":
		return 1
	}
	return 0
}
