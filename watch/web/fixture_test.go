package web

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/internal/certinfo"
	"github.com/starttls-go/starttls/mail"
	"github.com/starttls-go/starttls/tlsrpt"
	"github.com/starttls-go/starttls/watch"
	"github.com/starttls-go/starttls/watch/store"
)

// hostile is text a server controls (its greeting, its certificate's
// subject) written to break out of HTML.
const hostile = `<script>document.title="pwned"</script><img src=x onerror=alert(1)>`

var fixNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func targetReport(url, grade string, at time.Time, findings []check.Finding, greeting, subject string, notAfter time.Time) *check.Report {
	t, _ := starttls.ParseTarget(url, "")
	return &check.Report{
		Schema: check.Schema, Target: t.String(), Protocol: string(t.Protocol), Host: t.Host, Port: t.Port, Depth: "quick",
		StartedAt: at, Status: starttls.StatusSuccess, Grade: grade,
		StartTLS: check.StartTLSInfo{Offered: true, Upgraded: true, Greeting: greeting},
		TLS:      check.TLSInfo{Versions: map[string]bool{"tls1.2": true, "tls1.3": true}, Negotiated: &check.Negotiated{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256"}},
		Certificate: check.CertificateInfo{Chain: []certinfo.Cert{{Subject: subject, Issuer: "CN=Test CA", SHA256: "ab12",
			NotAfter: notAfter, KeyType: "ECDSA", KeyBits: 256}}, Verification: certinfo.Verification{OK: true}},
		Findings: findings,
	}
}

// record stores one run the way watch does: compared with the previous one.
func record(t testing.TB, st *store.SQL, priors map[string]store.Prior, key string, snap store.Snapshot, rep any) {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	p, ok := priors[key]
	var prev *store.Snapshot
	if ok {
		prev = &p.Snapshot
	}
	d := watch.Compare(prev, snap, p.State, watch.DiffOptions{UnreachableAfter: 3, ExpiryDays: []int{30, 14, 7, 1}, Now: snap.At})
	priors[key] = store.Prior{Snapshot: d.Baseline, State: d.State}
	if err := st.Save(context.Background(), &store.Run{Snapshot: snap, Baseline: d.Baseline, State: d.State, Changes: d.Changes,
		Appeared: d.Appeared, Disappeared: d.Disappeared, Report: b, DurationMS: 12, First: !ok}); err != nil {
		t.Fatal(err)
	}
}

// fixture is a database with a hostile target (30 days of history, a
// grade drop and a finding that came and went), a good target and a
// mail domain, plus the TLS-RPT collector's tables with reports.
func fixture(t testing.TB) *store.SQL {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	priors := map[string]store.Prior{}
	bad := "smtp://127.0.0.1:2525"
	for i := 30; i >= 0; i-- {
		at := fixNow.Add(-time.Duration(i) * 24 * time.Hour)
		grade, fs := "A", []check.Finding{}
		if i < 20 && i > 5 {
			grade = "C"
			fs = []check.Finding{{ID: "cert-untrusted", Severity: check.High, Title: "certificate not trusted " + hostile, Evidence: hostile}}
		}
		r := targetReport(bad, grade, at, fs, "220 "+hostile+" ESMTP", "CN="+hostile, fixNow.Add(10*24*time.Hour))
		if i == 3 {
			r.Status, r.Grade, r.Error, r.StartTLS.Upgraded = starttls.StatusConnectRefused, "F", "connection refused", false
		}
		record(t, st, priors, "target:"+bad, watch.TargetSnapshot("target:"+bad, r), r)
	}
	good := "smtp://127.0.0.2:25"
	for i := 2; i >= 0; i-- {
		at := fixNow.Add(-time.Duration(i) * time.Hour)
		r := targetReport(good, "A+", at, []check.Finding{}, "220 good ESMTP", "CN=mx.good.test", fixNow.Add(80*24*time.Hour))
		record(t, st, priors, "target:"+good, watch.TargetSnapshot("target:"+good, r), r)
	}
	mr := &mail.Report{Schema: mail.Schema, Domain: "mail.test", StartedAt: fixNow, Status: mail.StatusOK, Grade: "B",
		MX: mail.MXInfo{Hosts: []*mail.MXHost{{Name: "mx1.mail.test", Preference: 10, Addresses: []string{"127.0.0.3"}, STARTTLS: true, CertValid: true,
			STSMatch: "*.mail.test", DANE: &mail.HostDANE{Verdict: mail.DANEPass},
			Check: targetReport("smtp://mx1.mail.test:25", "A", fixNow, []check.Finding{}, "220 mx1", "CN=mx1.mail.test", fixNow.Add(60*24*time.Hour))}}},
		MTASTS:   mail.MTASTS{Records: []string{"v=STSv1; id=20261201"}, Record: &mail.STSRecord{ID: "20261201"}, Mode: "testing", Policy: &mail.Policy{Version: "STSv1", Mode: "testing", MX: []string{"*.mail.test"}, MaxAge: 86400}},
		TLSRPT:   mail.TLSRPT{Records: []string{"v=TLSRPTv1; rua=mailto:tlsrpt@mail.test"}, Record: &mail.TLSRPTRecord{RUA: []string{"mailto:tlsrpt@mail.test"}}},
		Findings: []check.Finding{{ID: "mta-sts-testing", Severity: check.Medium, Title: "MTA-STS is in testing mode"}},
	}
	record(t, st, priors, "domain:mail.test", watch.DomainSnapshot("domain:mail.test", mr), mr)
	// The TLS-RPT collector's tables, made by its own code, with two
	// reports for mail.test (one with a failure) and one for another domain.
	if _, err := tlsrpt.OpenDB(context.Background(), st.DB(), "sqlite"); err != nil {
		t.Fatal(err)
	}
	end := fixNow.Add(-24 * time.Hour).Unix()
	for _, q := range []string{
		`INSERT INTO tlsrpt_reports (id, organization, report_id, contact_info, start_unix, end_unix, received_unix, source, raw_json) VALUES
			(1, 'Sender A', 'r1', '', ` + fmt.Sprint(end-86400) + `, ` + fmt.Sprint(end) + `, ` + fmt.Sprint(end) + `, 'smtp', '{}'),
			(2, 'Sender B', 'r2', '', ` + fmt.Sprint(end-86400) + `, ` + fmt.Sprint(end) + `, ` + fmt.Sprint(end) + `, 'https', '{}'),
			(3, 'Sender C', 'r3', '', ` + fmt.Sprint(end-86400) + `, ` + fmt.Sprint(end) + `, ` + fmt.Sprint(end) + `, 'https', '{}')`,
		`INSERT INTO tlsrpt_policies (id, report, policy_type, policy_domain, policy_string, mx_host, successful, failed) VALUES
			(1, 1, 'sts', 'mail.test', '', 'mx1.mail.test', 120, 3), (2, 2, 'sts', 'mail.test', '', 'mx1.mail.test', 80, 0),
			(3, 3, 'sts', 'other.test', '', 'mx.other.test', 5, 5)`,
		`INSERT INTO tlsrpt_failures (policy, result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip,
			failed_sessions, additional_information, failure_reason_code) VALUES
			(1, 'certificate-expired', '192.0.2.1', 'mx1.mail.test', '', '', 3, '', '')`,
	} {
		if _, err := st.DB().Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return st
}
