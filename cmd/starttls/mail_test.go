package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/mail"
	"github.com/starttls-go/starttls/mail/mailtest"
)

// TestMailCommand runs `starttls mail` against the loopback world of
// mailtest (NSD + validating unbound, serve and Postfix MX hosts, an HTTPS
// policy host): text and JSON output, --fail-on and the exit codes.
func TestMailCommand(t *testing.T) {
	e := mailtest.Start(t)
	base := []string{"mail", "--resolver", e.Resolver, "--ca", e.CAFile,
		"--smtp-port", strconv.Itoa(e.SMTPPort), "--https-port", strconv.Itoa(e.HTTPSPort), "--timeout", "5s"}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, "", append(slices.Clone(base), args...)...)
	}

	t.Run("good domain, text", func(t *testing.T) {
		code, out, errs := cli("good.mail.test")
		if code != exitOK {
			t.Fatalf("exit %d: %s\n%s", code, errs, out)
		}
		for _, want := range []string{"good.mail.test  grade A", "DNSSEC          yes", "10 mx1.good.mail.test  127.0.0.2",
			"STARTTLS    yes", "DANE        pass", "TLSA 2 0 1", "mode            enforce", "enabled         yes",
			"rua             mailto:tlsrpt@good.mail.test", "REQUIRETLS", "Findings (0)"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "\x1b[") {
			t.Error("color codes written to a non-terminal")
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out, errs := cli("--json", "good.mail.test", "nostarttls.mail.test", "plain.test")
		if code != exitFindings || !strings.Contains(errs, "nostarttls.mail.test: grade F") {
			t.Fatalf("exit %d, stderr %q", code, errs)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		want := map[string][]string{
			"good.mail.test":       {},
			"nostarttls.mail.test": {"mta-sts-testing", "stripping-possible"},
			"plain.test":           {"dane-no-dnssec"},
		}
		n := 0
		for dec.More() {
			var raw map[string]any
			var r mail.Report
			if err := dec.Decode(&raw); err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(raw)
			if err := json.Unmarshal(b, &r); err != nil {
				t.Fatal(err)
			}
			if raw["schema"] != mail.Schema || r.Grade == "" || r.Findings == nil {
				t.Errorf("document %d: schema %v grade %q", n, raw["schema"], r.Grade)
			}
			ids := r.IDs()
			slices.Sort(ids)
			if w, ok := want[r.Domain]; !ok || !slices.Equal(ids, w) {
				t.Errorf("%s: findings %v, want %v", r.Domain, ids, w)
			}
			if len(r.MX.Hosts) == 0 || r.MX.Hosts[0].Check == nil || r.MX.Hosts[0].Check.Schema != "starttls.report/v1" {
				t.Errorf("%s: the MX check report is not embedded", r.Domain)
			}
			for _, f := range r.Findings {
				if f.Evidence == "" || f.Fix == "" || f.Title == "" {
					t.Errorf("%s: finding %s incomplete", r.Domain, f.ID)
				}
			}
			if _, ok := raw["mta_sts"].(map[string]any)["policy"]; r.Domain == "good.mail.test" && !ok {
				t.Error("good.mail.test: no mta_sts.policy in JSON")
			}
			n++
		}
		if n != 3 {
			t.Errorf("%d documents, want 3", n)
		}
	})

	t.Run("fail-on", func(t *testing.T) {
		// mta-sts-testing is low: below the default threshold, at "low".
		if code, out, errs := cli("testing.mail.test"); code != exitOK {
			t.Errorf("default --fail-on: exit %d: %s\n%s", code, errs, out)
		}
		if code, _, errs := cli("--fail-on", "low", "testing.mail.test"); code != exitFindings || !strings.Contains(errs, "at or above low") {
			t.Errorf("--fail-on low: exit %d: %s", code, errs)
		}
		if code, _, errs := cli("--fail-on", "critical", "badtlsa.mail.test"); code != exitFindings {
			t.Errorf("dane-mismatch is critical: exit %d: %s", code, errs)
		}
		if code, _, errs := cli("--fail-on", "critical", "mismatch.mail.test"); code != exitOK {
			t.Errorf("mta-sts-mx-mismatch is high: exit %d: %s", code, errs)
		}
	})

	t.Run("exit 3", func(t *testing.T) {
		for _, d := range []string{"nonexistent.mail.test", "down.mail.test", "bogus.test"} {
			if code, out, _ := cli(d); code != exitConnect {
				t.Errorf("%s: exit %d, want %d\n%s", d, code, exitConnect, out)
			}
		}
		// A resolver that does not answer.
		if code, _, errs := runCLI(t, "", "mail", "--resolver", "127.0.0.1:"+strconv.Itoa(freeUDPPort(t)), "--timeout", "1s", "good.mail.test"); code != exitConnect || !strings.Contains(errs, "dns-error") {
			t.Errorf("dead resolver: exit %d: %s", code, errs)
		}
	})

	t.Run("requiretls", func(t *testing.T) {
		code, out, errs := cli("requiretls.mail.test")
		if code != exitOK {
			t.Fatalf("exit %d: %s\n%s", code, errs, out)
		}
		for _, want := range []string{"REQUIRETLS  yes", "every MX        yes"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		// serve's MX hosts do not advertise it.
		if _, out, _ := cli("good.mail.test"); !strings.Contains(out, "every MX        no") || strings.Contains(out, "REQUIRETLS  yes") {
			t.Errorf("good.mail.test claims REQUIRETLS:\n%s", out)
		}
	})

	t.Run("trust-ad", func(t *testing.T) {
		// The same loopback unbound, named "localhost": a name is not a
		// loopback address as written, so its AD bit counts only with
		// --trust-ad. Only 127.0.0.1 is dialled either way.
		_, port, err := net.SplitHostPort(e.Resolver)
		if err != nil {
			t.Fatal(err)
		}
		named := []string{"mail", "--resolver", "localhost:" + port, "--ca", e.CAFile,
			"--smtp-port", strconv.Itoa(e.SMTPPort), "--https-port", strconv.Itoa(e.HTTPSPort), "--timeout", "5s"}
		code, out, errs := runCLI(t, "", append(slices.Clone(named), "good.mail.test")...)
		if code != exitFindings || !strings.Contains(out, "AD bit not trusted") || !strings.Contains(out, "dane-no-dnssec") ||
			!strings.Contains(out, "use --trust-ad") {
			t.Errorf("without --trust-ad: exit %d: %s\n%s", code, errs, out)
		}
		code, out, errs = runCLI(t, "", append(slices.Clone(named), "--trust-ad", "--json", "good.mail.test")...)
		var r mail.Report
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("--trust-ad --json: %v: %s", err, out)
		}
		ids := r.IDs()
		if code != exitOK || !r.ADTrusted || !r.DANE.Enabled || !r.MX.Secure || len(ids) != 0 {
			t.Errorf("with --trust-ad: exit %d ad_trusted %v dane %v findings %v: %s", code, r.ADTrusted, r.DANE.Enabled, ids, errs)
		}
	})

	t.Run("null MX", func(t *testing.T) {
		code, out, _ := cli("nullmx.mail.test")
		if code != exitOK || !strings.Contains(out, "grade n/a") || !strings.Contains(out, "null MX: the domain accepts no mail") {
			t.Errorf("exit %d:\n%s", code, out)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"--fail-on", "severe", "good.mail.test"},
			{"--only", "deep", "good.mail.test"},
			{"--smtp-port", "0", "good.mail.test"},
			{"a..b"},
			{"--ca", filepath.Join(t.TempDir(), "missing.pem"), "good.mail.test"},
		} {
			if code, _, errs := cli(args...); code != exitUsage {
				t.Errorf("%v: exit %d: %s", args, code, errs)
			}
		}
		if code, _, _ := runCLI(t, "", "mail"); code != exitUsage {
			t.Errorf("no domain: exit %d", code)
		}
	})
}

// freeUDPPort is a loopback UDP port nobody listens on: a query there
// gets "connection refused" or times out, a DNS failure either way.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func TestTLSRPTCommand(t *testing.T) {
	dir := t.TempDir()
	raw, err := os.ReadFile("../../mail/testdata/tlsrpt-example.json")
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(raw)
	_ = zw.Close()
	gzFile := filepath.Join(dir, "company-x.example!company-y.example!1459468800!1459555199.json.gz")
	if err := os.WriteFile(gzFile, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	second := "../../mail/testdata/tlsrpt-second.json"

	code, out, errs := runCLI(t, "", "tlsrpt", gzFile, second)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"2 report(s)", "company-y.example (sts)", "5336 successful, 308 failed",
		"starttls-not-supported", "certificate-expired", "mx1.company-y.example (tlsa)", "Company-X, Example Sender"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errs = runCLI(t, "", "tlsrpt", "--json", gzFile)
	if code != exitOK {
		t.Fatalf("--json: exit %d: %s", code, errs)
	}
	var s mail.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Schema != mail.SummarySchema || len(s.Policies) != 1 || s.Policies[0].Failed != 303 || len(s.Policies[0].Failures) != 3 {
		t.Errorf("summary %+v", s)
	}

	// Standard input, and a file that is not a report: the others still count.
	code, out, errs = runCLI(t, string(raw), "tlsrpt", "-", filepath.Join(dir, "missing.json"))
	if code != exitFindings || !strings.Contains(out, "company-y.example (sts)") || !strings.Contains(errs, "1 of 2 report(s)") {
		t.Errorf("stdin + missing: exit %d: %s\n%s", code, errs, out)
	}
	if code, _, _ := runCLI(t, "", "tlsrpt"); code != exitUsage {
		t.Errorf("no file: exit %d", code)
	}
}
