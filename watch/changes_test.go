package watch

import (
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/watch/store"
)

var t0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func base() store.Snapshot {
	return store.Snapshot{
		Subject: "target:smtp://mx.test:25", Kind: store.KindTarget, Name: "smtp://mx.test:25", At: t0,
		Status: "success", Reachable: true, Grade: "A",
		Findings: []store.Finding{{ID: "tls-1.0", Severity: "low", Title: "TLS 1.0"}},
		Certs:    []store.Cert{{SHA256: "aa", Subject: "CN=mx.test", NotAfter: t0.Add(90 * 24 * time.Hour)}},
		Versions: []string{"tls1.2", "tls1.3"},
		Suites:   []string{"tls1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"},
	}
}

func dom() store.Snapshot {
	s := base()
	s.Subject, s.Kind, s.Name = "domain:mail.test", store.KindDomain, "mail.test"
	s.STSID, s.STSMode, s.MX = "20260101", "enforce", []string{"mx1.mail.test", "mx2.mail.test"}
	s.TLSA = map[string]string{"mx1.mail.test": "pass"}
	return s
}

var opts = DiffOptions{UnreachableAfter: 3, ExpiryDays: []int{30, 14, 7, 1}, Now: t0}

func kinds(cs []store.Change) string {
	var k []string
	for _, c := range cs {
		k = append(k, c.Kind)
	}
	return strings.Join(k, ",")
}

// Each kind of change is detected from exactly the edit that causes it,
// and an identical run reports nothing.
func TestCompareKinds(t *testing.T) {
	cases := []struct {
		name string
		prev func() store.Snapshot
		edit func(s *store.Snapshot)
		want string
	}{
		{"identical", base, func(s *store.Snapshot) {}, ""},
		{"grade dropped", base, func(s *store.Snapshot) { s.Grade = "C" }, GradeDropped},
		{"grade raised", base, func(s *store.Snapshot) { s.Grade = "A+" }, GradeRaised},
		{"finding appeared", base, func(s *store.Snapshot) {
			s.Findings = append(s.Findings, store.Finding{ID: "cert-expired", Severity: "critical"})
		}, FindingAppeared},
		{"finding disappeared", base, func(s *store.Snapshot) { s.Findings = nil }, FindingDisappeared},
		{"cert replaced", base, func(s *store.Snapshot) { s.Certs[0].SHA256 = "bb" }, CertReplaced},
		{"versions", base, func(s *store.Snapshot) { s.Versions = []string{"tls1.0", "tls1.2", "tls1.3"} }, VersionsChanged},
		{"suites", base, func(s *store.Snapshot) { s.Suites = append(s.Suites, "tls1.2 TLS_RSA_WITH_AES_128_CBC_SHA") }, SuitesChanged},
		{"suites not measured", base, func(s *store.Snapshot) { s.Suites = nil }, ""},
		{"expiring", base, func(s *store.Snapshot) { s.Certs[0].NotAfter = t0.Add(20 * 24 * time.Hour) }, CertExpiring},
		{"sts id", dom, func(s *store.Snapshot) { s.STSID = "20260202" }, STSChanged},
		{"sts mode", dom, func(s *store.Snapshot) { s.STSMode = "testing" }, STSChanged},
		{"mx set", dom, func(s *store.Snapshot) { s.MX = []string{"mx1.mail.test"} }, MXChanged},
		{"tlsa", dom, func(s *store.Snapshot) { s.TLSA["mx1.mail.test"] = "fail" }, TLSAMismatch},
		{"domain identical", dom, func(s *store.Snapshot) {}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			prev := c.prev()
			cur := c.prev()
			cur.Certs = append([]store.Cert(nil), cur.Certs...)
			cur.At = t0.Add(5 * time.Minute)
			c.edit(&cur)
			d := Compare(&prev, cur, store.State{}, opts)
			if got := kinds(d.Changes); got != c.want {
				t.Fatalf("changes %q, want %q: %+v", got, c.want, d.Changes)
			}
		})
	}
}

// A condition alerts once however long it lasts and its end once:
// unreachable after N runs, TLSA mismatch, and expiry thresholds.
func TestCompareConditionsOnce(t *testing.T) {
	prev := base()
	st := store.State{}
	var all []string
	step := func(edit func(s *store.Snapshot), now time.Time) {
		cur := base()
		cur.Certs = append([]store.Cert(nil), cur.Certs...)
		edit(&cur)
		o := opts
		o.Now = now
		d := Compare(&prev, cur, st, o)
		prev, st = d.Baseline, d.State
		all = append(all, kinds(d.Changes))
	}
	down := func(s *store.Snapshot) {
		s.Reachable, s.Status, s.Grade, s.Findings, s.Certs = false, "connect-refused", "F", nil, nil
	}
	up := func(s *store.Snapshot) {}
	for range 5 {
		step(down, t0)
	}
	step(up, t0)
	step(up, t0)
	want := []string{"", "", Unreachable, "", "", Reachable, ""}
	if strings.Join(all, "|") != strings.Join(want, "|") {
		t.Fatalf("unreachable sequence %q, want %q", all, want)
	}
	// The unreachable runs did not make findings disappear.
	if len(prev.Findings) != 1 {
		t.Fatalf("baseline findings %v", prev.Findings)
	}
	all = nil
	exp := t0.Add(40 * 24 * time.Hour) // the certificate's end
	for _, daysBefore := range []int{35, 29, 25, 13, 12, 6, 0} {
		step(func(s *store.Snapshot) { s.Certs[0].NotAfter = exp }, exp.Add(-time.Duration(daysBefore)*24*time.Hour-time.Hour))
	}
	want = []string{"", CertExpiring, "", CertExpiring, "", CertExpiring, CertExpiring}
	if strings.Join(all, "|") != strings.Join(want, "|") {
		t.Fatalf("expiry sequence %q, want %q", all, want)
	}
	// A replaced certificate starts afresh: replaced, and no expiry alert.
	all = nil
	step(func(s *store.Snapshot) { s.Certs[0].SHA256 = "cc"; s.Certs[0].NotAfter = exp.Add(90 * 24 * time.Hour) }, exp.Add(-time.Hour))
	if all[0] != CertReplaced {
		t.Fatalf("after renewal %q", all)
	}
}

func TestCompareTLSARecovery(t *testing.T) {
	prev := dom()
	st := store.State{}
	var got []string
	for _, v := range []string{"fail", "fail", "pass", "pass"} {
		cur := dom()
		cur.TLSA = map[string]string{"mx1.mail.test": v}
		d := Compare(&prev, cur, st, opts)
		prev, st = d.Baseline, d.State
		got = append(got, kinds(d.Changes))
	}
	if want := TLSAMismatch + "||" + TLSAMatch + "|"; strings.Join(got, "|") != want {
		t.Fatalf("got %q want %q", strings.Join(got, "|"), want)
	}
}

// First runs announce no finding as a change but open its span; a first
// run that never answered is no baseline for findings.
func TestCompareFirstRun(t *testing.T) {
	d := Compare(nil, base(), store.State{}, opts)
	if len(d.Changes) != 0 || len(d.Appeared) != 1 {
		t.Fatalf("first run: %v appeared %v", d.Changes, d.Appeared)
	}
	down := base()
	down.Reachable, down.Findings = false, nil
	d = Compare(nil, down, store.State{}, opts)
	prev := d.Baseline
	d = Compare(&prev, base(), d.State, opts)
	if len(d.Changes) != 0 || len(d.Appeared) != 1 {
		t.Fatalf("after a failed first run: %v", d.Changes)
	}
}
