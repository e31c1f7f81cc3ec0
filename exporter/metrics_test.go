package exporter

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

func TestGradeValue(t *testing.T) {
	order := []string{"F", "D", "C", "B", "A", "A+"}
	for i, g := range order {
		if v := GradeValue(g); v != float64(i) {
			t.Errorf("%s = %v, want %d", g, v, i)
		}
	}
	if v := GradeValue(""); v != -1 {
		t.Errorf("no grade = %v", v)
	}
}

// Vulnerability verdicts become starttls_vulnerable; verdicts that are
// not a yes or no (n/a, errors) are left out rather than reported as 0.
func TestReportRegistryVulnerabilities(t *testing.T) {
	r := &check.Report{Status: starttls.StatusSuccess, Grade: "F",
		StartTLS: check.StartTLSInfo{Upgraded: true},
		TLS: check.TLSInfo{Vulnerabilities: map[string]string{
			"heartbleed": "vulnerable", "robot": "not-vulnerable", "ccs-injection": "n/a: TLS 1.3 only", "ticketbleed": "error: reset",
		}},
		Findings: []check.Finding{{ID: "heartbleed", Severity: check.Critical}},
	}
	crit := check.Critical
	reg := ReportRegistry(r, &crit, time.Second, time.Now())
	want := `
# HELP starttls_vulnerable 1 vulnerable, 0 not vulnerable, by vulnerability id (full checks; untested or failed probes are left out).
# TYPE starttls_vulnerable gauge
starttls_vulnerable{id="heartbleed"} 1
starttls_vulnerable{id="robot"} 0
# HELP starttls_probe_success 1 when the TLS session was established (and, with the module's fail_on, no finding reached it).
# TYPE starttls_probe_success gauge
starttls_probe_success 0
# HELP starttls_findings Number of findings by severity.
# TYPE starttls_findings gauge
starttls_findings{severity="critical"} 1
starttls_findings{severity="high"} 0
starttls_findings{severity="info"} 0
starttls_findings{severity="low"} 0
starttls_findings{severity="medium"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "starttls_vulnerable", "starttls_probe_success", "starttls_findings"); err != nil {
		t.Error(err)
	}
	// Without vulnerability verdicts there is no such family at all.
	r.TLS.Vulnerabilities = nil
	if n, err := testutil.GatherAndCount(ReportRegistry(r, nil, time.Second, time.Now()), "starttls_vulnerable"); err != nil || n != 0 {
		t.Errorf("starttls_vulnerable without verdicts: %d %v", n, err)
	}
}
