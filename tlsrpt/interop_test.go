package tlsrpt

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

// interopReports are realistic reports covering every RFC 8460 §4.3
// result type across three senders and the three policy types.
func interopReports() []tlsrpttest.Report {
	google := tlsrpttest.Report{Org: "google.com", ReportID: "2026-12-01T00:00:00Z_example.org", Start: day,
		Domain: "example.org", PolicyType: "sts", Successful: 4211}
	for i, t := range tlsrpttest.ResultTypes {
		google.Failures = append(google.Failures, tlsrpttest.Failure{ResultType: t, Sessions: int64(i + 1)})
	}
	return []tlsrpttest.Report{
		google,
		{Org: "microsoft.com", ReportID: "133781234567890123+example.org", Start: day, Domain: "example.org", PolicyType: "tlsa",
			Successful: 977, Failures: []tlsrpttest.Failure{{ResultType: "tlsa-invalid", Sessions: 4}, {ResultType: "dnssec-invalid", Sessions: 2}, {ResultType: "dane-required", Sessions: 1}}},
		{Org: "mail.sender.test", ReportID: "<20261201.1@mail.sender.test>", Start: day, Domain: "example.org", PolicyType: "no-policy-found",
			Successful: 12, Failures: []tlsrpttest.Failure{{ResultType: "starttls-not-supported", Sessions: 3}}},
	}
}

func writeTemp(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func swaks(t *testing.T, bin string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	return string(out)
}

// waitCounts polls the store until cond holds (Postfix delivers from its
// queue in the background), bounded in time.
func waitCounts(t *testing.T, st *Store, what string, cond func(*Counts) bool, logs func() string) *Counts {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		n, err := st.Count(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if cond(n) {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: counts %+v\n%s", what, n, logs())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestInteropPostfixSwaksDovecot: reports travel through real Postfix
// (relayhost = our tlsrpt SMTP port, STARTTLS), straight from swaks, and
// through a real Dovecot mailbox fetched over IMAP; the stored rows are
// counted per table and per result type.
func TestInteropPostfixSwaksDovecot(t *testing.T) {
	bins := peer.Require(t, "swaks")
	pki := newTestPKI(t)
	st := newSQLite(t)
	var alerts []Alert
	col := &Collector{Store: st, Alerts: &Alerter{FailureRate: 0.01, Notify: func(a []Alert) { alerts = append(alerts, a...) }}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &SMTPServer{Collector: col, TLSConfig: pki.server, Hostname: "reports.test", Domains: []string{"reports.test"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	defer func() { cancel(); <-done }()

	pf := peer.StartPostfix(t, peer.PostfixOptions{MainCF: []string{
		"relayhost = [" + l.Addr().(*net.TCPAddr).IP.String() + "]:" + fmt.Sprint(l.Addr().(*net.TCPAddr).Port),
		"smtp_tls_security_level = may",
		"smtp_tls_loglevel = 1",
	}})
	dir := t.TempDir()
	reps := interopReports()
	rcpt := "tlsrpt@reports.test"
	// Through Postfix: the three reports (gzip, gzip, plain JSON), a
	// malformed one and an ordinary message.
	for i, r := range reps {
		payload := r.JSON()
		if i < 2 {
			payload = tlsrpttest.Gzip(payload)
		}
		msg := tlsrpttest.Mail("noreply-tlsrpt@"+r.Org, rcpt, r.Domain, r.ReportID, payload, i < 2)
		f := writeTemp(t, dir, fmt.Sprintf("pf-%d.eml", i), msg)
		if out := swaks(t, bins["swaks"], "--server", pf.SMTPAddr, "--from", "noreply-tlsrpt@"+r.Org, "--to", rcpt, "--data", "@"+f); !strings.Contains(out, "<-  250 2.0.0 Ok: queued") || strings.Contains(out, "<** ") {
			t.Fatalf("postfix refused report %d:\n%s", i, out)
		}
	}
	bad := tlsrpttest.Mail("noreply@broken.test", rcpt, "example.org", "bad-1", []byte(`{"organization-name":"broken.test","report-id":"bad-1","policies":[{"policy":{"policy-type":"sts"}}]}`), false)
	swaks(t, bins["swaks"], "--server", pf.SMTPAddr, "--from", "noreply@broken.test", "--to", rcpt, "--data", "@"+writeTemp(t, dir, "pf-bad.eml", bad))
	swaks(t, bins["swaks"], "--server", pf.SMTPAddr, "--from", "someone@spam.test", "--to", rcpt, "--data", "@"+writeTemp(t, dir, "pf-plain.eml", tlsrpttest.PlainMail("someone@spam.test", rcpt)))
	waitCounts(t, st, "after Postfix", func(n *Counts) bool { return n.Reports == 3 && n.Quarantined == 1 }, pf.Log)
	if log := pf.Log(); !strings.Contains(log, "TLS connection established to 127.0.0.1") {
		t.Errorf("Postfix did not use STARTTLS towards the collector:\n%s", log)
	}
	// The refusals happen in the session, so Postfix (not we) bounces.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		log := pf.Log()
		if strings.Contains(log, "said: 550 5.7.1 This address accepts only TLS-RPT reports") && strings.Contains(log, "said: 554 5.6.0 Malformed TLS-RPT report") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Postfix log lacks the refusals:\n%s", log)
		}
	}

	// Straight from swaks with STARTTLS: a second day from Google, a
	// duplicate, and a gzip bomb.
	day2 := reps[0]
	day2.ReportID, day2.Start = "2026-12-02T00:00:00Z_example.org", day.Add(24*time.Hour)
	day2.Failures = day2.Failures[:2]
	direct := []struct {
		name, want string
		msg        []byte
	}{
		{"day2", "<~  250 2.0.0 Ok: 1 report(s) stored", tlsrpttest.Mail("noreply@google.com", rcpt, "example.org", day2.ReportID, tlsrpttest.Gzip(day2.JSON()), true)},
		{"dup", "<~  250 2.0.0 Ok: 0 report(s) stored, 1 duplicate", tlsrpttest.Mail("noreply@google.com", rcpt, "example.org", reps[0].ReportID, tlsrpttest.Gzip(reps[0].JSON()), true)},
		{"bomb", "<~* 554 5.6.0 Malformed TLS-RPT report: invalid TLS-RPT report: decompressed report larger than", tlsrpttest.Mail("noreply@bomb.test", rcpt, "example.org", "bomb", tlsrpttest.Gzip(make([]byte, MaxReportBytes+1)), true)},
	}
	for _, d := range direct {
		out := swaks(t, bins["swaks"], "--server", l.Addr().String(), "--tls", "--tls-verify", "--tls-ca-path", writeTemp(t, dir, "ca.pem", caPEM(t, pki)),
			"--tls-sni", "reports.test", "--from", "noreply@sender.test", "--to", rcpt, "--data", "@"+writeTemp(t, dir, d.name+".eml", d.msg))
		if !strings.Contains(out, d.want) || !strings.Contains(out, "TLS started") {
			t.Errorf("swaks %s: want %q in\n%s", d.name, d.want, out)
		}
	}

	// Through a Dovecot mailbox: a copy of a stored report (duplicate), a
	// new one, a malformed one, an ordinary message.
	dc := peer.StartDovecot(t, peer.DovecotOptions{})
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(dc.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA %v", err)
	}
	mb := Mailbox{URL: "imaps://" + dc.User + "@" + dc.IMAPSAddr + "/INBOX", Password: dc.Password, TLSConfig: &tls.Config{RootCAs: pool}}
	starttlsBox := mb
	starttlsBox.URL = "imap://" + dc.User + "@" + dc.IMAPAddr + "/INBOX"
	day3 := reps[1]
	day3.ReportID, day3.Start = "133781234567890999+example.org", day.Add(48*time.Hour)
	for _, m := range [][]byte{
		tlsrpttest.Mail("noreply@microsoft.com", rcpt, "example.org", reps[1].ReportID, tlsrpttest.Gzip(reps[1].JSON()), true),
		tlsrpttest.Mail("noreply@microsoft.com", rcpt, "example.org", day3.ReportID, day3.JSON(), false),
		tlsrpttest.Mail("noreply@broken.test", rcpt, "example.org", "bad-2", []byte(`{"organization-name":"x","date-range":{"start-datetime":"yesterday"}}`), false),
		tlsrpttest.PlainMail("friend@example.net", rcpt),
	} {
		// Appended over imap:// (STARTTLS), fetched over imaps:// below.
		if err := AppendMessage(context.Background(), starttlsBox, m); err != nil {
			t.Fatalf("APPEND: %v\n%s", err, dc.Log())
		}
	}
	fctx, fcancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer fcancel()
	stats, err := col.Fetch(fctx, mb)
	if err != nil {
		t.Fatalf("fetch: %v\n%s", err, dc.Log())
	}
	if stats != (FetchStats{Messages: 4, Stored: 1, Duplicates: 1, Quarantined: 1, NotReports: 1}) {
		t.Errorf("fetch stats %+v", stats)
	}
	// Idempotent: the mailbox is empty now, a second run does nothing.
	if again, err := col.Fetch(fctx, mb); err != nil || again != (FetchStats{}) {
		t.Errorf("second fetch %+v %v", again, err)
	}
	for box, want := range map[string]int{"INBOX": 0, "INBOX.processed": 2, "INBOX.quarantine": 2} {
		if n := mailboxSize(t, mb, box); n != want {
			t.Errorf("%s holds %d messages, want %d", box, n, want)
		}
	}

	n, err := st.Count(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// Stored: 3 via Postfix, 1 via swaks, 1 via IMAP. Quarantined: one
	// each way. Failure rows: 11 + 3 + 1 + 2 + 3.
	if n.Reports != 5 || n.Policies != 5 || n.Failures != 20 || n.Quarantined != 3 {
		t.Errorf("counts %+v", n)
	}
	wantRows := map[string]int64{"starttls-not-supported": 3, "certificate-host-mismatch": 2, "certificate-expired": 1,
		"certificate-not-trusted": 1, "validation-failure": 1, "tlsa-invalid": 3, "dnssec-invalid": 3, "dane-required": 3,
		"sts-policy-fetch-error": 1, "sts-policy-invalid": 1, "sts-webpki-invalid": 1}
	for typ, want := range wantRows {
		if n.RowsByType[typ] != want {
			t.Errorf("%s: %d failure rows, want %d", typ, n.RowsByType[typ], want)
		}
	}
	if len(n.RowsByType) != len(tlsrpttest.ResultTypes) {
		t.Errorf("result types stored: %v", n.RowsByType)
	}
	var policyErrors int
	for _, a := range alerts {
		if a.Kind == AlertPolicyError {
			policyErrors++
		}
	}
	if policyErrors < 3 { // Google's sts-policy-fetch-error and tlsa-invalid, Microsoft's tlsa-invalid
		t.Errorf("policy-error alerts: %d in %+v", policyErrors, alerts)
	}
}

func caPEM(t *testing.T, p testPKI) []byte {
	t.Helper()
	return p.caPEM
}

// mailboxSize counts a mailbox's messages (SELECT's EXISTS).
func mailboxSize(t *testing.T, mb Mailbox, box string) int {
	t.Helper()
	m, err := parseMailboxURL(mb.URL)
	if err != nil {
		t.Fatal(err)
	}
	ic, err := dialIMAP(context.Background(), m.implicit, m.addr, mb.TLSConfig)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.logout()
	if err := ic.login(m.user, mb.Password); err != nil {
		t.Fatal(err)
	}
	q, _ := quote(box)
	rs, err := ic.cmd("SELECT %s", q)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		var n int
		if _, err := fmt.Sscanf(r.text, "* %d EXISTS", &n); err == nil {
			return n
		}
	}
	t.Fatalf("no EXISTS for %s", box)
	return -1
}
