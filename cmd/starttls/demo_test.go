package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/check"
)

// The README's first command: it must work with nothing installed and
// its self-check must hold (correct servers A/A+, the misconfigured one
// caught).
func TestDemo(t *testing.T) {
	code, out, errs := runCLI(t, "", "demo")
	if code != 0 {
		t.Fatalf("demo exit %d: %s\n%s", code, errs, out)
	}
	// The exact grade is the check's rule (check/grade.go); the demo's
	// promise is that the misconfigured server is not graded like a good one.
	_, mis, ok := strings.Cut(out, "misconfigured  grade ")
	if !ok || strings.HasPrefix(mis, "A") || strings.Count(out, "correct        grade A") < 8 {
		t.Errorf("unexpected summary:\n%s", out)
	}
	// The binary protocols have real applications now and are checked too.
	for _, scheme := range []string{"ldap", "postgres", "mysql"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && strings.HasPrefix(f[0], scheme+"://") && f[1] == "correct" && strings.HasPrefix(f[3], "A") {
				found = true
			}
		}
		if !found {
			t.Errorf("summary lacks a correct %s server graded A:\n%s", scheme, out)
		}
	}
}

func TestDemoJSON(t *testing.T) {
	code, out, errs := runCLI(t, "", "demo", "--json")
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, errs)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	protocols := map[string]bool{}
	for dec.More() {
		var r check.Report
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("document %d: %v", n, err)
		}
		if r.Schema != check.Schema || r.Grade == "" || r.StartTLS.Probes == nil {
			t.Errorf("document %d incomplete: schema %q grade %q", n, r.Schema, r.Grade)
		}
		protocols[r.Protocol] = true
		n++
	}
	for _, p := range []string{"ldap", "postgres", "mysql"} {
		if !protocols[p] {
			t.Errorf("no %s report in the demo's JSON", p)
		}
	}
	if n < 9 {
		t.Errorf("%d documents, want at least 9", n)
	}
}
