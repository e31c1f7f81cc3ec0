package main

import (
	"crypto/tls"
	"crypto/x509"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/internal/certinfo"
	"github.com/starttls-go/starttls/internal/loopback"
)

// perfItem is one perfdata item in the guidelines' syntax:
// 'label'=value[UOM];[warn];[crit];[min];[max], trailing fields optional.
var perfItem = regexp.MustCompile(`^('[^']+'|[^'= ]+)=-?[0-9.]+(us|ms|s|%|B|KB|MB|GB|TB|c)?(;[-0-9.:~@]*){0,4}$`)

// checkPluginOutput asserts the format: the first line "STARTTLS STATE - text | perfdata"
// with valid perfdata, and returns the first line's text and perfdata items.
func checkPluginOutput(t *testing.T, out string) (first string, perf map[string]string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	text, pd, ok := strings.Cut(lines[0], " | ")
	if !ok || strings.Count(lines[0], "|") != 1 {
		t.Fatalf("first line has no single ' | ' before perfdata: %q", lines[0])
	}
	if !regexp.MustCompile(`^STARTTLS (OK|WARNING|CRITICAL|UNKNOWN) - `).MatchString(text) {
		t.Errorf("status line %q", text)
	}
	perf = map[string]string{}
	for _, it := range strings.Fields(pd) {
		if !perfItem.MatchString(it) {
			t.Errorf("perfdata item %q is not 'label'=value[UOM];[warn];[crit];[min];[max]", it)
		}
		k, v, _ := strings.Cut(it, "=")
		perf[k] = v
	}
	for _, l := range lines[1:] {
		if strings.Contains(l, "|") {
			t.Errorf("long output line with a '|': %q", l)
		}
	}
	return text, perf
}

func report(target string, mod func(r *check.Report)) *check.Report {
	r := &check.Report{Target: target, Host: "mx.example.org", Port: 25, Status: starttls.StatusSuccess, Grade: "A+",
		StartTLS:    check.StartTLSInfo{Upgraded: true},
		TLS:         check.TLSInfo{Negotiated: &check.Negotiated{Version: "TLS 1.3"}},
		Certificate: check.CertificateInfo{Chain: []certinfo.Cert{{DaysLeft: 80}}},
		Timings:     check.Timings{TotalMS: 120.5, HandshakeMS: 4.25},
	}
	if mod != nil {
		mod(r)
	}
	return r
}

func TestNagiosState(t *testing.T) {
	th := nagiosThresholds{WarnDays: 30, CritDays: 7, WarnOn: check.Medium, CritOn: check.High}
	finding := func(id string, s check.Severity) func(*check.Report) {
		return func(r *check.Report) { r.Findings = append(r.Findings, check.Finding{ID: id, Severity: s}) }
	}
	days := func(d int) func(*check.Report) { return func(r *check.Report) { r.Certificate.Chain[0].DaysLeft = d } }
	cases := []struct {
		name   string
		mod    func(*check.Report)
		th     nagiosThresholds
		state  int
		reason string
	}{
		{"clean", nil, th, nagiosOK, ""},
		{"low finding", finding("tls-no-server-order", check.Low), th, nagiosOK, ""},
		{"medium finding", finding("cert-expires-soon", check.Medium), th, nagiosWarning, "cert-expires-soon (medium)"},
		{"high finding", finding("cert-untrusted", check.High), th, nagiosCritical, "cert-untrusted (high)"},
		{"high under --crit-on critical", finding("cert-untrusted", check.High), nagiosThresholds{30, 7, check.Medium, check.Critical}, nagiosWarning, "cert-untrusted"},
		{"30 days", days(30), th, nagiosOK, ""},
		{"29 days", days(29), th, nagiosWarning, "certificate 29 days left (< 30)"},
		{"7 days", days(7), th, nagiosWarning, "7 days"},
		{"6 days", days(6), th, nagiosCritical, "certificate 6 days left (< 7)"},
		{"expired", days(-3), th, nagiosCritical, "-3 days"},
		{"refused", func(r *check.Report) {
			*r = check.Report{Target: r.Target, Status: starttls.StatusConnectRefused, Error: "connection refused", Grade: "F"}
		}, th, nagiosCritical, "connect-refused: connection refused"},
		{"not offered", func(r *check.Report) {
			*r = check.Report{Target: r.Target, Status: starttls.StatusNotOffered, Grade: "F"}
		}, th, nagiosCritical, "not-offered"},
		{"handshake failed", func(r *check.Report) { r.Status, r.StartTLS.Upgraded = starttls.StatusHandshake, false }, th, nagiosCritical, "handshake-error"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := report("smtp://mx.example.org:25", tc.mod)
			s, why := nagiosState(r, tc.th)
			if s != tc.state {
				t.Errorf("state %s, want %s (%v)", nagiosNames[s], nagiosNames[tc.state], why)
			}
			if j := strings.Join(why, ", "); !strings.Contains(j, tc.reason) || (tc.reason == "" && j != "") {
				t.Errorf("reasons %q, want %q", j, tc.reason)
			}
			code, out := nagiosOutput([]*check.Report{r}, tc.th)
			if code != tc.state || strings.Count(out, "\n") != 1 {
				t.Errorf("output (exit %d) is not one line of state %d: %q", code, tc.state, out)
			}
			checkPluginOutput(t, out)
		})
	}
}

func TestNagiosOutputFormat(t *testing.T) {
	th := nagiosThresholds{WarnDays: 30, CritDays: 7, WarnOn: check.Medium, CritOn: check.High}
	code, out := nagiosOutput([]*check.Report{report("smtp://mx.example.org:25", nil)}, th)
	want := "STARTTLS OK - smtp://mx.example.org:25 grade A+, TLS 1.3, cert 80 days left | days_left=80;30:;7:;; handshake_ms=4.250ms;;;0; total_ms=120.500ms;;;0; " +
		"findings_critical=0;;0;0; findings_high=0;;0;0; findings_medium=0;0;;0; findings_low=0;;;0; findings_info=0;;;0; grade=5;;;0;5\n"
	if code != nagiosOK || out != want {
		t.Errorf("exit %d\n got %q\nwant %q", code, out, want)
	}

	// Several targets: the worst wins, the summary line counts them and
	// carries every target's perfdata, one line per target follows.
	bad := report("smtp://mx2.example.org:25", func(r *check.Report) {
		r.Host, r.Grade = "mx2.example.org", "C"
		r.Findings = []check.Finding{{ID: "cert-untrusted", Severity: check.High}}
	})
	warn := report("imap://imap.example.org:143", func(r *check.Report) {
		r.Host, r.Port = "imap.example.org", 143
		r.Certificate.Chain[0].DaysLeft = 12
	})
	code, out = nagiosOutput([]*check.Report{report("smtp://mx.example.org:25", nil), bad, warn}, th)
	if code != nagiosCritical {
		t.Errorf("exit %d, want CRITICAL", code)
	}
	first, perf := checkPluginOutput(t, out)
	if first != "STARTTLS CRITICAL - 3 targets: 1 critical, 1 warning, 1 ok" {
		t.Errorf("summary %q", first)
	}
	if perf["mx2.example.org_25_findings_high"] != "1;;0;0;" || perf["imap.example.org_143_days_left"] != "12;30:;7:;;" || perf["mx.example.org_25_grade"] != "5;;;0;5" {
		t.Errorf("per-target perfdata: %v", perf)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	wantLines := []string{
		"OK - smtp://mx.example.org:25 grade A+, TLS 1.3, cert 80 days left",
		"CRITICAL - smtp://mx2.example.org:25 grade C, TLS 1.3, cert 80 days left: cert-untrusted (high)",
		"WARNING - imap://imap.example.org:143 grade A+, TLS 1.3, cert 12 days left: certificate 12 days left (< 30)",
	}
	if len(lines) != 4 || strings.Join(lines[1:], "\n") != strings.Join(wantLines, "\n") {
		t.Errorf("long output:\n%s", out)
	}

	// A peer's text cannot break the format.
	code, out = nagiosOutput([]*check.Report{{Target: "smtp://x:25", Status: starttls.StatusProtocol, Error: "bad reply \"250 a|b\r\nc\"", Grade: "F"}}, th)
	if code != nagiosCritical || strings.Count(out, "\n") != 1 {
		t.Errorf("exit %d: %q", code, out)
	}
	checkPluginOutput(t, out)
}

// The plugin mode through the CLI against loopback servers: exit codes
// are the plugin states, stdout is the plugin output, stderr stays quiet.
func TestCheckNagiosCLI(t *testing.T) {
	good, ca := smtpFake(t, starttls.ServerConfig{})
	pki := newTestPKI(t, func(c *x509.Certificate) { c.NotAfter = time.Now().Add(20*24*time.Hour + time.Hour) })
	soon := libServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.leaf}}}, smtpApp)
	closed := loopback.UnusedAddr(t)
	q := []string{"check", "--nagios", "--only", "quick", "--timeout", "3s"}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"good", append(q, "--ca", ca, "smtp://"+good), nagiosOK, "STARTTLS OK - smtp://" + good + " grade A, TLS 1.3, cert 36"},
		{"untrusted", append(q, "smtp://"+good), nagiosCritical, "cert-untrusted (high)"},
		{"untrusted, --crit-on critical", append(q, "--crit-on", "critical", "smtp://"+good), nagiosWarning, "STARTTLS WARNING - "},
		{"20 days, findings ignored", append(q, "--ca", pki.caFile, "--warn-on", "critical", "smtp://"+soon), nagiosWarning, "certificate 20 days left (< 30)"},
		{"20 days, --warn-days 14", append(q, "--ca", pki.caFile, "--warn-on", "critical", "--warn-days", "14", "smtp://"+soon), nagiosOK, "days_left=20;14:;7:;;"},
		{"20 days, --crit-days 21", append(q, "--ca", pki.caFile, "--warn-on", "critical", "--crit-days", "21", "smtp://"+soon), nagiosCritical, "certificate 20 days left (< 21)"},
		{"unreachable", append(q, "smtp://"+closed), nagiosCritical, "STARTTLS CRITICAL - smtp://" + closed + ": connect-refused"},
		{"two targets", append(q, "--ca", ca, "smtp://"+good, "smtp://"+closed), nagiosCritical, "STARTTLS CRITICAL - 2 targets: 1 critical, 0 warning, 1 ok |"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, "", tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\n%s%s", code, tc.code, out, errs)
			}
			if !strings.Contains(out, tc.want) {
				t.Errorf("output does not contain %q:\n%s", tc.want, out)
			}
			if errs != "" {
				t.Errorf("stderr: %q", errs)
			}
			checkPluginOutput(t, out)
		})
	}
}

// Usage errors in plugin mode are UNKNOWN (3), with the reason on the
// status line.
func TestCheckNagiosUnknown(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"check", "--nagios"}, "arg"},
		{[]string{"check", "--nagios", "gopher://127.0.0.1:1"}, "gopher"},
		{[]string{"check", "--nagios", "--warn-on", "severe", "smtp://127.0.0.1:1"}, "--warn-on"},
		{[]string{"check", "--nagios", "--crit-on", "worst", "smtp://127.0.0.1:1"}, "--crit-on"},
		{[]string{"check", "--nagios", "--warn-days", "-1", "smtp://127.0.0.1:1"}, "--warn-days"},
		{[]string{"check", "--nagios", "--json", "smtp://127.0.0.1:1"}, "--json"},
		{[]string{"check", "--nagios", "--only", "some", "smtp://127.0.0.1:1"}, "--only"},
		{[]string{"check", "--nagios", "--no-such-flag", "smtp://127.0.0.1:1"}, "no-such-flag"},
	}
	for _, tc := range cases {
		code, out, _ := runCLI(t, "", tc.args...)
		if code != nagiosUnknown || !strings.HasPrefix(out, "STARTTLS UNKNOWN - ") || !strings.Contains(out, tc.want) || strings.Count(out, "\n") != 1 {
			t.Errorf("%v: exit %d, output %q", tc.args, code, out)
		}
	}
	// Without --nagios usage errors keep exit 2.
	if code, _, _ := runCLI(t, "", "check", "--warn-on", "severe", "--only", "some", "smtp://127.0.0.1:1"); code != exitUsage {
		t.Errorf("plain check usage error: exit %d", code)
	}
}
