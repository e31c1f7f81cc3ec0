package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/tlsrpt"
	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
	"github.com/starttls-go/starttls/watch"
)

// resetTLSRPTFlags puts the tlsrpt subcommands' flags back to their
// defaults (resetFlags only walks the top level).
func resetTLSRPTFlags() {
	var tc *cobra.Command
	for _, c := range rootCmd.Commands() {
		if c.Name() == "tlsrpt" {
			tc = c
		}
	}
	for _, c := range tc.Commands() {
		resetCommandFlags(c)
	}
}

func runTLSRPT(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	defer resetTLSRPTFlags()
	return runCLI(t, "", args...)
}

func sampleReport(org, id string, start time.Time, types ...string) tlsrpttest.Report {
	r := tlsrpttest.Report{Org: org, ReportID: id, Start: start, Domain: "example.org", PolicyType: "sts", Successful: 500}
	for i, ty := range types {
		r.Failures = append(r.Failures, tlsrpttest.Failure{ResultType: ty, Sessions: int64(i + 1)})
	}
	return r
}

func TestTLSRPTSummaryCommand(t *testing.T) {
	db := filepath.Join(t.TempDir(), "r.db")
	st, err := tlsrpt.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	c := &tlsrpt.Collector{Store: st}
	now := time.Now().UTC().Truncate(24 * time.Hour)
	for _, r := range []tlsrpttest.Report{
		sampleReport("google.com", "g1", now.Add(-48*time.Hour), tlsrpttest.ResultTypes...),
		sampleReport("microsoft.com", "m1", now.Add(-24*time.Hour), "certificate-expired"),
		sampleReport("old.test", "o1", now.Add(-90*24*time.Hour), "dnssec-invalid"),
	} {
		if _, err := c.IngestPayload(context.Background(), r.JSON(), tlsrpt.Source{Kind: "file"}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	code, out, errs := runTLSRPT(t, "tlsrpt", "summary", "--db", db)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"2 report(s), 1000 successful and 67 failed", "google.com", "microsoft.com",
		"sts-webpki-invalid", "Failure rate by day", now.Add(-24 * time.Hour).Format(time.DateOnly)} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "old.test") {
		t.Errorf("a report older than 30 days is counted:\n%s", out)
	}
	code, out, _ = runTLSRPT(t, "tlsrpt", "summary", "--db", db, "--since", "120d", "--domain", "example.org", "--json")
	var s tlsrpt.Summary
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.Schema != tlsrpt.SummarySchema || s.Reports != 3 || len(s.Days) != 3 {
		t.Errorf("json: exit %d %+v\n%s", code, s, out)
	}
	if code, _, errs := runTLSRPT(t, "tlsrpt", "summary", "--db", db, "--since", "last week"); code != exitUsage || !strings.Contains(errs, "--since") {
		t.Errorf("bad --since: exit %d %s", code, errs)
	}
}

func TestTLSRPTUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"tlsrpt", "serve", "--db", filepath.Join(t.TempDir(), "x.db")},
		{"tlsrpt", "serve", "--smtp", "127.0.0.1:0", "--domain", "r.test"},
		{"tlsrpt", "serve", "--smtp", "127.0.0.1:0", "--cert", "/nonexistent", "--key", "/nonexistent"},
		{"tlsrpt", "fetch", "--imap", "imaps://u@127.0.0.1/INBOX", "--imap-password-env", "TLSRPT_TEST_UNSET"},
		{"tlsrpt", "fetch"},
	} {
		if code, _, errs := runTLSRPT(t, args...); code != exitUsage {
			t.Errorf("%v: exit %d (%s)", args, code, errs)
		}
	}
}

// --alerts takes a watch configuration: a missing or invalid file, one
// without routes, or --alerts with --webhook is a usage error naming the cause.
func TestTLSRPTAlertsUsageErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	pw := write("pw", "x\n")
	good := write("good.yml", "alerts:\n  - name: ops\n    webhook: http://127.0.0.1:9/\n")
	for _, c := range []struct {
		extra []string
		want  string
	}{
		{[]string{"--alerts", filepath.Join(dir, "missing.yml")}, "no such file"},
		{[]string{"--alerts", write("bad.yml", "alerts:\n  - name: ops\n    webhook: ftp://x\n")}, "bad.yml:3: alerts[0].webhook"},
		{[]string{"--alerts", write("none.yml", "interval: 5m\n")}, "no alert routes"},
		{[]string{"--alerts", write("rate.yml", "alerts:\n  - name: ops\n    webhook: http://127.0.0.1:9/\ntlsrpt:\n  failure_rate: -1\n")}, "tlsrpt.failure_rate"},
		{[]string{"--alerts", good, "--webhook", "http://127.0.0.1:9/"}, "not both"},
		{[]string{"--webhook", "gopher://x"}, "--webhook:3: alerts[0].webhook"},
		{[]string{"--alerts", good, "--alert-rate", "2"}, "--alert-rate 2"},
	} {
		for _, sub := range []string{"serve", "fetch"} {
			args := append([]string{"tlsrpt", sub, "--imap", "imaps://u@127.0.0.1:9/INBOX", "--imap-password-file", pw, "--db", filepath.Join(dir, "x.db")}, c.extra...)
			if code, _, errs := runTLSRPT(t, args...); code != exitUsage || !strings.Contains(errs, c.want) {
				t.Errorf("%v: exit %d (%s), want %q", c.extra, code, errs, c.want)
			}
		}
	}
}

// alertHook is an httptest webhook collecting watch alerts.
func alertHook(t *testing.T) (string, func() []watch.Alert) {
	var mu sync.Mutex
	var got []watch.Alert
	h := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var al watch.Alert
		if err := json.NewDecoder(r.Body).Decode(&al); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		got = append(got, al)
		mu.Unlock()
	}))
	t.Cleanup(h.Close)
	return h.URL, func() []watch.Alert { mu.Lock(); defer mu.Unlock(); return append([]watch.Alert(nil), got...) }
}

// serve end to end: SMTP with STARTTLS (Go's net/smtp) and an HTTPS POST
// land in the database that summary then reads.
func TestTLSRPTServeCommand(t *testing.T) {
	dir := t.TempDir()
	ca, err := certs.NewCA("tlsrpt cli CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Hosts: []string{"reports.test", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "serve.db")
	pr, pw := io.Pipe()
	rootCmd.SetOut(pw)
	rootCmd.SetErr(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	hookURL, alerts := alertHook(t)
	done := make(chan int, 1)
	go func() {
		done <- runContext(ctx, []string{"tlsrpt", "serve", "--smtp", "127.0.0.1:0", "--https", "127.0.0.1:0", "--domain", "reports.test",
			"--cert", certFile, "--key", keyFile, "--db", db, "--webhook", hookURL})
		pw.Close()
	}()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("serve exited %d", code)
			}
		case <-time.After(15 * time.Second):
			t.Error("serve did not stop")
		}
		resetTLSRPTFlags()
		rootCmd.SetOut(nil)
		rootCmd.SetErr(nil)
	}()
	addrs := map[string]string{}
	sc := bufio.NewScanner(pr)
	for len(addrs) < 2 && sc.Scan() {
		if name, addr, ok := strings.Cut(sc.Text(), ": listening on "); ok {
			addrs[name] = addr
		}
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	if addrs["smtp"] == "" || addrs["https"] == "" {
		t.Fatalf("listening lines: %v", addrs)
	}
	tc := &tls.Config{RootCAs: ca.Pool(), ServerName: "reports.test"}
	c, err := smtp.Dial(addrs["smtp"])
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(tc); err != nil {
		t.Fatal(err)
	}
	msg := tlsrpttest.Mail("noreply@google.com", "tlsrpt@reports.test", "example.org", "cli-1",
		tlsrpttest.Gzip(sampleReport("google.com", "cli-1", time.Now().Add(-24*time.Hour), "certificate-expired").JSON()), true)
	if err := c.Mail("noreply@google.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("tlsrpt@reports.test"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write(msg)
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	// --webhook is a one-route watch configuration: the report's new
	// failure type follows the acknowledged DATA from serve's outbox.
	var got []watch.Alert
	for end := time.Now().Add(10 * time.Second); len(got) == 0 && time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		got = alerts()
	}
	if len(got) != 1 || got[0].Schema != watch.AlertSchema || got[0].Route != "webhook" || len(got[0].Changes) != 1 ||
		got[0].Changes[0].Kind != "tlsrpt-new-failure-type" || got[0].Changes[0].Detail["result_type"] != "certificate-expired" {
		t.Errorf("webhook got %+v", got)
	}
	if err := c.Mail("noreply@google.com"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("postmaster@elsewhere.test"); err == nil || !strings.Contains(err.Error(), "550") {
		t.Errorf("foreign recipient: %v", err)
	}
	_ = c.Quit()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
	resp, err := hc.Post("https://"+addrs["https"]+"/", "application/tlsrpt+json",
		bytes.NewReader(sampleReport("microsoft.com", "cli-2", time.Now().Add(-24*time.Hour)).JSON()))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("POST: %s", resp.Status)
	}
	st, err := tlsrpt.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	n, err := st.Count(context.Background())
	if err != nil || n.Reports != 2 || n.Failures != 1 {
		t.Errorf("stored %+v %v", n, err)
	}
}

// fetch against a real Dovecot: password from a file, the server's CA
// from --imap-ca, the counts as JSON.
func TestTLSRPTFetchCommand(t *testing.T) {
	dc := peer.StartDovecot(t, peer.DovecotOptions{})
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte(dc.Password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(dc.CAFile)
	if err != nil || !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("CA: %v", err)
	}
	url := "imaps://" + dc.User + "@" + dc.IMAPSAddr + "/INBOX"
	mb := tlsrpt.Mailbox{URL: url, Password: dc.Password, TLSConfig: &tls.Config{RootCAs: pool}}
	rep := sampleReport("google.com", "fetch-1", time.Now().Add(-24*time.Hour), "sts-policy-invalid")
	for _, m := range [][]byte{
		tlsrpttest.Mail("noreply@google.com", "tlsrpt@reports.test", "example.org", "fetch-1", tlsrpttest.Gzip(rep.JSON()), true),
		tlsrpttest.PlainMail("friend@example.net", "tlsrpt@reports.test"),
	} {
		if err := tlsrpt.AppendMessage(context.Background(), mb, m); err != nil {
			t.Fatal(err)
		}
	}
	hookURL, alerts := alertHook(t)
	cfg := filepath.Join(dir, "watch.yml")
	if err := os.WriteFile(cfg, []byte("alerts:\n  - name: ops\n    webhook: "+hookURL+"\n  - name: quiet\n    webhook: http://127.0.0.1:9/\ntlsrpt:\n  alerts: [ops]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(dir, "f.db")
	args := []string{"tlsrpt", "fetch", "--imap", url, "--imap-password-file", pw, "--imap-ca", dc.CAFile, "--db", db, "--json", "--alerts", cfg}
	code, out, errs := runTLSRPT(t, args...)
	var st tlsrpt.FetchStats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st != (tlsrpt.FetchStats{Messages: 2, Stored: 1, NotReports: 1}) {
		t.Fatalf("exit %d %+v\n%s%s\n%s", code, st, out, errs, dc.Log())
	}
	// The stored report's new failure type went along the ops route only
	// (the quiet route's port 9 would have failed and been logged).
	if got := alerts(); len(got) != 1 || got[0].Route != "ops" || len(got[0].Changes) != 1 || got[0].Changes[0].Kind != "tlsrpt-new-failure-type" ||
		got[0].Changes[0].Detail["result_type"] != "sts-policy-invalid" || strings.Contains(errs, "tlsrpt alert") {
		t.Errorf("webhook got %+v, stderr %s", got, errs)
	}
	// Without the CA the server's certificate is not trusted: exit 3.
	if code, _, errs := runTLSRPT(t, "tlsrpt", "fetch", "--imap", url, "--imap-password-file", pw, "--db", db); code != exitConnect || !strings.Contains(errs, "certificate") {
		t.Errorf("untrusted: exit %d %s", code, errs)
	}
}
