package watch

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/starttls-go/starttls/mail"
	"github.com/starttls-go/starttls/watch/store"
)

// Change kinds.
const (
	GradeDropped       = "grade-dropped"
	GradeRaised        = "grade-raised"
	FindingAppeared    = "finding-appeared"
	FindingDisappeared = "finding-disappeared"
	CertReplaced       = "cert-replaced"
	CertExpiring       = "cert-expiring"
	VersionsChanged    = "tls-versions-changed"
	SuitesChanged      = "cipher-suites-changed"
	STSChanged         = "mta-sts-changed"
	TLSAMismatch       = "tlsa-mismatch"
	TLSAMatch          = "tlsa-match"
	MXChanged          = "mx-changed"
	Unreachable        = "unreachable"
	Reachable          = "reachable-again"
)

// DiffOptions tune change detection.
type DiffOptions struct {
	UnreachableAfter int   // consecutive unreachable runs before an alert
	ExpiryDays       []int // days-left thresholds announced once per certificate
	Now              time.Time
}

// Diff is the outcome of comparing a run with the previous one.
type Diff struct {
	Changes               []store.Change
	Appeared, Disappeared []store.Finding
	State                 store.State
	// Baseline is what the next run is compared with: cur when the
	// subject answered, else the previous baseline (an unreachable run
	// says nothing about findings or certificates).
	Baseline store.Snapshot
}

// Compare computes the changes from prev (nil on a subject's first run)
// to cur. A condition (unreachable, TLSA mismatch, certificate expiry)
// is announced once when it starts and once when it ends, however many
// runs it lasts.
func Compare(prev *store.Snapshot, cur store.Snapshot, st store.State, o DiffOptions) Diff {
	st = cloneState(st)
	d := Diff{Baseline: cur}
	add := func(kind, sev string, recovery bool, format string, a ...any) {
		d.Changes = append(d.Changes, store.Change{Subject: cur.Subject, At: cur.At, Kind: kind, Severity: sev, Recovery: recovery, Message: fmt.Sprintf(format, a...)})
	}
	if !cur.Reachable {
		st.Fails++
		if prev != nil {
			d.Baseline = *prev
		} else {
			d.Baseline.Findings = nil
		}
		if st.Fails >= o.UnreachableAfter && st.Open[Unreachable] == "" {
			msg := fmt.Sprintf("%s unreachable %d times in a row (%s: %s)", cur.Name, st.Fails, cur.Status, cur.Error)
			st.Open[Unreachable] = msg
			add(Unreachable, "high", false, "%s", msg)
		}
		d.State = st
		return d
	}
	if st.Open[Unreachable] != "" {
		delete(st.Open, Unreachable)
		add(Reachable, "info", true, "%s answers again after %d failed runs", cur.Name, st.Fails)
	}
	st.Fails = 0
	if prev != nil && !prev.Reachable {
		prev = nil // never answered before: nothing to compare with
	}
	if prev == nil {
		d.Appeared = cur.Findings
	} else {
		diffGrade(prev, &cur, add)
		d.Appeared, d.Disappeared = diffFindings(prev.Findings, cur.Findings)
		for _, f := range d.Appeared {
			add(FindingAppeared, f.Severity, false, "%s: new finding %s (%s)", where(cur.Name, f.Host), f.ID, f.Title)
		}
		for _, f := range d.Disappeared {
			add(FindingDisappeared, "info", true, "%s: finding %s is gone (%s)", where(cur.Name, f.Host), f.ID, f.Title)
		}
		diffCerts(prev, &cur, add)
		diffSet(VersionsChanged, "TLS versions", prev.Versions, cur.Versions, cur.Name, add)
		diffSet(SuitesChanged, "cipher suites", prev.Suites, cur.Suites, cur.Name, add)
		if cur.Kind == store.KindDomain {
			diffDomain(prev, &cur, add)
		}
	}
	diffTLSA(&cur, &st, add)
	diffExpiry(&cur, &st, o, add)
	d.State = st
	return d
}

type addFunc func(kind, sev string, recovery bool, format string, a ...any)

func cloneState(st store.State) store.State {
	st.Open = maps.Clone(st.Open)
	if st.Open == nil {
		st.Open = map[string]string{}
	}
	st.Expiry = maps.Clone(st.Expiry)
	if st.Expiry == nil {
		st.Expiry = map[string]int{}
	}
	return st
}

func where(name, host string) string {
	if host == "" {
		return name
	}
	return name + " (MX " + host + ")"
}

func diffGrade(prev, cur *store.Snapshot, add addFunc) {
	p, c := gradeRank(prev.Grade), gradeRank(cur.Grade)
	switch {
	case p > 0 && c < p:
		sev := "medium"
		if c <= gradeRank("D") {
			sev = "high"
		}
		add(GradeDropped, sev, false, "%s: grade dropped from %s to %s", cur.Name, prev.Grade, cur.Grade)
	case c > p && p > 0:
		add(GradeRaised, "info", true, "%s: grade rose from %s to %s", cur.Name, prev.Grade, cur.Grade)
	}
}

func diffFindings(prev, cur []store.Finding) (appeared, disappeared []store.Finding) {
	was := map[string]bool{}
	for _, f := range prev {
		was[f.Key()] = true
	}
	is := map[string]bool{}
	for _, f := range cur {
		is[f.Key()] = true
		if !was[f.Key()] {
			appeared = append(appeared, f)
		}
	}
	for _, f := range prev {
		if !is[f.Key()] {
			disappeared = append(disappeared, f)
		}
	}
	return appeared, disappeared
}

func diffCerts(prev, cur *store.Snapshot, add addFunc) {
	old := map[string]store.Cert{}
	for _, c := range prev.Certs {
		old[c.Host] = c
	}
	for _, c := range cur.Certs {
		o, ok := old[c.Host]
		if ok && o.SHA256 != c.SHA256 {
			add(CertReplaced, "low", false, "%s: certificate replaced (%s, until %s; was %s, until %s)",
				where(cur.Name, c.Host), c.Subject, c.NotAfter.Format(time.DateOnly), o.Subject, o.NotAfter.Format(time.DateOnly))
		}
	}
}

// diffSet compares two measured sets; an unmeasured side (nil, e.g. a
// quick check's suites) compares with nothing.
func diffSet(kind, what string, prev, cur []string, name string, add addFunc) {
	if prev == nil || cur == nil || slices.Equal(prev, cur) {
		return
	}
	in, out := setDiff(prev, cur)
	var parts []string
	if len(in) > 0 {
		parts = append(parts, "now accepted: "+strings.Join(in, ", "))
	}
	if len(out) > 0 {
		parts = append(parts, "no longer: "+strings.Join(out, ", "))
	}
	sev := "low"
	for _, v := range in {
		if strings.HasSuffix(v, "tls1.0") || strings.HasSuffix(v, "tls1.1") || strings.HasSuffix(v, "sslv3") {
			sev = "medium"
		}
	}
	add(kind, sev, false, "%s: %s changed; %s", name, what, strings.Join(parts, "; "))
}

func setDiff(prev, cur []string) (in, out []string) {
	was, is := map[string]bool{}, map[string]bool{}
	for _, v := range prev {
		was[v] = true
	}
	for _, v := range cur {
		is[v] = true
		if !was[v] {
			in = append(in, v)
		}
	}
	for _, v := range prev {
		if !is[v] {
			out = append(out, v)
		}
	}
	return in, out
}

var stsModeRank = map[string]int{"": 0, "none": 1, "testing": 2, "enforce": 3}

func diffDomain(prev, cur *store.Snapshot, add addFunc) {
	if prev.STSID != cur.STSID || prev.STSMode != cur.STSMode {
		sev := "low"
		if stsModeRank[cur.STSMode] < stsModeRank[prev.STSMode] {
			sev = "high"
		}
		add(STSChanged, sev, false, "%s: MTA-STS policy changed: id %q -> %q, mode %q -> %q",
			cur.Name, prev.STSID, cur.STSID, orNone(prev.STSMode), orNone(cur.STSMode))
	}
	if !slices.Equal(prev.MX, cur.MX) {
		add(MXChanged, "medium", false, "%s: MX set changed: %s -> %s", cur.Name, strings.Join(prev.MX, " "), strings.Join(cur.MX, " "))
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func diffTLSA(cur *store.Snapshot, st *store.State, add addFunc) {
	hosts := slices.Sorted(maps.Keys(cur.TLSA))
	for _, h := range hosts {
		key := "tlsa:" + h
		switch v := cur.TLSA[h]; {
		case v == mail.DANEFail && st.Open[key] == "":
			msg := fmt.Sprintf("%s: TLSA records of MX %s no longer match the served key", cur.Name, h)
			st.Open[key] = msg
			add(TLSAMismatch, "high", false, "%s", msg)
		case v == mail.DANEPass && st.Open[key] != "":
			delete(st.Open, key)
			add(TLSAMatch, "info", true, "%s: TLSA records of MX %s match the served key again", cur.Name, h)
		}
	}
	// A host gone from the MX set closes its condition silently: the MX
	// change is announced by itself.
	for key := range st.Open {
		if h, ok := strings.CutPrefix(key, "tlsa:"); ok && cur.TLSA[h] == "" {
			delete(st.Open, key)
		}
	}
}

var expirySeverity = map[int]string{30: "low", 14: "medium", 7: "high", 1: "critical"}

func diffExpiry(cur *store.Snapshot, st *store.State, o DiffOptions, add addFunc) {
	days := slices.Clone(o.ExpiryDays)
	sort.Sort(sort.Reverse(sort.IntSlice(days)))
	seen := map[string]bool{}
	for _, c := range cur.Certs {
		seen[c.SHA256] = true
		left := int(c.NotAfter.Sub(o.Now).Hours() / 24)
		if c.NotAfter.Before(o.Now) {
			left = -1
		}
		level := -2 // the smallest threshold reached
		for _, t := range days {
			if left <= t {
				level = t
			}
		}
		if level == -2 {
			continue
		}
		if prev, ok := st.Expiry[c.SHA256]; ok && prev <= level {
			continue
		}
		st.Expiry[c.SHA256] = level
		sev := expirySeverity[level]
		if sev == "" {
			sev = "medium"
		}
		msg := fmt.Sprintf("%s: certificate expires in %d days (%s)", where(cur.Name, c.Host), left, c.NotAfter.Format(time.DateOnly))
		if left < 0 {
			sev, msg = "critical", fmt.Sprintf("%s: certificate expired on %s", where(cur.Name, c.Host), c.NotAfter.Format(time.DateOnly))
		}
		add(CertExpiring, sev, false, "%s", msg)
	}
	for sha := range st.Expiry {
		if !seen[sha] {
			delete(st.Expiry, sha)
		}
	}
}
