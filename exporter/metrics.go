package exporter

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// Grades maps the check's letter grades to starttls_grade: higher is
// better, so an alert reads "starttls_grade < 4" (worse than A). A report
// without a grade is -1.
var Grades = map[string]float64{"A+": 5, "A": 4, "B": 3, "C": 2, "D": 1, "F": 0}

// GradeValue is the number of a letter grade (see Grades), -1 when unknown.
func GradeValue(g string) float64 {
	if v, ok := Grades[g]; ok {
		return v
	}
	return -1
}

// Success says whether a report counts as a successful probe: the TLS
// session was established and, with a threshold, no finding reaches it.
func Success(r *check.Report, failOn *check.Severity) bool {
	if r.Status != starttls.StatusSuccess || !r.StartTLS.Upgraded {
		return false
	}
	if failOn != nil {
		for _, f := range r.Findings {
			if f.Severity >= *failOn {
				return false
			}
		}
	}
	return true
}

// severities in the order of check.Severity.
var severities = []check.Severity{check.Info, check.Low, check.Medium, check.High, check.Critical}

// ReportRegistry builds a registry holding the metrics of one report:
// the answer to one /probe. now is the clock for days_left.
func ReportRegistry(r *check.Report, failOn *check.Severity, elapsed time.Duration, now time.Time) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	gauge := func(name, help string) prometheus.Gauge {
		g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
		reg.MustRegister(g)
		return g
	}
	vec := func(name, help string, labels ...string) *prometheus.GaugeVec {
		g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
		reg.MustRegister(g)
		return g
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	gauge("starttls_probe_success", "1 when the TLS session was established (and, with the module's fail_on, no finding reached it).").
		Set(b2f(Success(r, failOn)))
	gauge("starttls_upgrade_success", "1 when STARTTLS (or implicit TLS) led to a TLS session.").Set(b2f(r.StartTLS.Upgraded))
	vec("starttls_probe_status", "The main session's status (success, connect-refused, not-offered, ...): 1 for the one reached.", "status").
		WithLabelValues(string(r.Status)).Set(1)
	gauge("starttls_grade", "The check's grade as a number: A+ 5, A 4, B 3, C 2, D 1, F 0 (-1 none).").Set(GradeValue(r.Grade))
	vec("starttls_grade_info", "The check's letter grade.", "grade").WithLabelValues(r.Grade).Set(1)

	finding := vec("starttls_finding", "A finding of the check, by id and severity.", "id", "severity")
	counts := vec("starttls_findings", "Number of findings by severity.", "severity")
	for _, s := range severities {
		counts.WithLabelValues(s.String())
	}
	for _, f := range r.Findings {
		finding.WithLabelValues(f.ID, f.Severity.String()).Set(1)
		counts.WithLabelValues(f.Severity.String()).Inc()
	}

	if len(r.Certificate.Chain) > 0 {
		leaf := r.Certificate.Chain[0]
		gauge("starttls_cert_not_after", "The leaf certificate's notAfter, in Unix seconds.").Set(float64(leaf.NotAfter.Unix()))
		gauge("starttls_cert_days_left", "Days until the leaf certificate expires (negative when expired).").
			Set(leaf.NotAfter.Sub(now).Hours() / 24)
		gauge("starttls_cert_verified", "1 when the certificate chain verifies for the server name.").Set(b2f(r.Certificate.Verification.OK))
	}
	if n := r.TLS.Negotiated; n != nil {
		vec("starttls_tls_version_info", "The TLS version a modern client negotiated.", "version").WithLabelValues(n.Version).Set(1)
	}

	dur := vec("starttls_probe_duration_seconds", "Duration of the phases of the main session, and of the whole probe.", "phase")
	t := r.Timings
	for phase, msv := range map[string]float64{"connect": t.ConnectMS, "greeting": t.GreetingMS, "dialogue": t.DialogueMS, "handshake": t.HandshakeMS} {
		dur.WithLabelValues(phase).Set(msv / 1000)
	}
	dur.WithLabelValues("total").Set(elapsed.Seconds())

	if len(r.TLS.Vulnerabilities) > 0 {
		vuln := vec("starttls_vulnerable", "1 vulnerable, 0 not vulnerable, by vulnerability id (full checks; untested or failed probes are left out).", "id")
		for id, v := range r.TLS.Vulnerabilities {
			switch v {
			case "vulnerable":
				vuln.WithLabelValues(id).Set(1)
			case "not-vulnerable":
				vuln.WithLabelValues(id).Set(0)
			}
		}
	}
	return reg
}
