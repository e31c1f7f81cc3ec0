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
}

func TestDemoJSON(t *testing.T) {
	code, out, errs := runCLI(t, "", "demo", "--json")
	if code != 0 {
		t.Fatalf("demo exit %d: %s", code, errs)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	n := 0
	for dec.More() {
		var r check.Report
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("document %d: %v", n, err)
		}
		if r.Schema != check.Schema || r.Grade == "" || r.StartTLS.Probes == nil {
			t.Errorf("document %d incomplete: schema %q grade %q", n, r.Schema, r.Grade)
		}
		n++
	}
	if n < 9 {
		t.Errorf("%d documents, want at least 9", n)
	}
}
