package tlsrpt

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
	"github.com/starttls-go/starttls/watch"
)

// hook is an httptest webhook recording the watch alerts it receives.
type hook struct {
	*httptest.Server
	mu     sync.Mutex
	got    []watch.Alert
	status int
}

func newHook(t *testing.T) *hook {
	h := &hook{status: http.StatusNoContent}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var al watch.Alert
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad webhook request %s %s", r.Method, r.Header.Get("Content-Type"))
		}
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&al); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		h.mu.Lock()
		h.got = append(h.got, al)
		st := h.status
		h.mu.Unlock()
		w.WriteHeader(st)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) calls() []watch.Alert {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]watch.Alert(nil), h.got...)
}

// kinds lists an alert's changes as "severity kind subject result_type".
func kinds(al watch.Alert) string {
	var out []string
	for _, c := range al.Changes {
		out = append(out, fmt.Sprintf("%s %s %s %v", c.Severity, c.Kind, c.Subject, c.Detail["result_type"]))
	}
	return strings.Join(out, "; ")
}

// Every rule's alert reaches a webhook through watch's route code: the
// body is a watch alert (schema, route, one change per tlsrpt alert with
// the report's fields in detail), and a route's min_severity applies.
func TestTLSRPTAlertsWatchRoutes(t *testing.T) {
	all, pager := newHook(t), newHook(t)
	cfg, err := watch.ParseConfig("w.yaml", []byte(fmt.Sprintf(`
alerts:
  - name: all
    webhook: %s
  - name: pager
    webhook: %s
    min_severity: high
tlsrpt:
  failure_rate: 0.5
`, all.URL, pager.URL)))
	if err != nil {
		t.Fatal(err)
	}
	routes, err := watch.NewRoutes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 2, 8, 0, 0, 0, time.UTC)
	s := newSQLite(t)
	ctx := context.Background()
	a := &Alerter{FailureRate: cfg.TLSRPT.FailureRate, MinSessions: cfg.TLSRPT.MinSessions, Send: RoutesSender(routes, cfg.TLSRPT.Alerts, func() time.Time { return now })}
	c := &Collector{Store: s, Alerts: a}
	ingest := func(r tlsrpttest.Report) {
		t.Helper()
		if o, err := c.IngestPayload(ctx, r.JSON(), Source{}); err != nil || !o.Stored {
			t.Fatalf("ingest %s: %+v %v", r.ReportID, o, err)
		}
	}

	// Under the threshold, one new failure type that is not a policy
	// error: medium, so only the route without min_severity gets it.
	quiet := tlsrpttest.Report{Org: "a.test", ReportID: "1", Start: day, Domain: "example.org", PolicyType: "sts", Successful: 100,
		Failures: []tlsrpttest.Failure{{ResultType: "certificate-expired", Sessions: 1}}}
	ingest(quiet)
	got := all.calls()
	if len(got) != 1 || len(pager.calls()) != 0 {
		t.Fatalf("calls: all %d, pager %d", len(got), len(pager.calls()))
	}
	al := got[0]
	if al.Schema != watch.AlertSchema || al.Route != "all" || al.SentAt.IsZero() || len(al.Changes) != 1 {
		t.Fatalf("alert %+v", al)
	}
	ch := al.Changes[0]
	if !ch.At.Equal(now) || ch.Kind != "tlsrpt-new-failure-type" || ch.Severity != "medium" || ch.Subject != "tlsrpt:example.org" ||
		!strings.Contains(ch.Message, "first certificate-expired failure reported for example.org (by a.test)") ||
		ch.Detail["organization"] != "a.test" || ch.Detail["report_id"] != "1" || ch.Detail["policy_type"] != "sts" || ch.Detail["sessions"] != 1.0 {
		t.Fatalf("change %+v", ch)
	}

	// The same type again from another sender: not new, nothing sent.
	quiet.Org, quiet.ReportID = "b.test", "2"
	ingest(quiet)
	if len(all.calls()) != 1 || len(pager.calls()) != 0 {
		t.Fatalf("a known failure type was sent: %d %d", len(all.calls()), len(pager.calls()))
	}

	// 30 of 31 sessions failed with sts-policy-fetch-error: the three
	// rules at once, highest severity first; the pager gets the two high ones.
	ingest(tlsrpttest.Report{Org: "c.test", ReportID: "3", Start: day, Domain: "example.org", PolicyType: "sts", Successful: 1,
		Failures: []tlsrpttest.Failure{{ResultType: "sts-policy-fetch-error", Sessions: 30}}})
	got = all.calls()
	if len(got) != 2 {
		t.Fatalf("%d calls", len(got))
	}
	want := "high tlsrpt-failure-rate tlsrpt:example.org <nil>; high tlsrpt-policy-error tlsrpt:example.org sts-policy-fetch-error; medium tlsrpt-new-failure-type tlsrpt:example.org sts-policy-fetch-error"
	if k := kinds(got[1]); k != want {
		t.Fatalf("changes\n got %s\nwant %s", k, want)
	}
	if r, _ := got[1].Changes[0].Detail["failure_rate"].(float64); r < 0.96 || r > 0.97 || !strings.Contains(got[1].Changes[0].Message, "above 50.0%") {
		t.Errorf("failure-rate change %+v", got[1].Changes[0])
	}
	p := pager.calls()
	if len(p) != 1 || p[0].Route != "pager" || kinds(p[0]) != "high tlsrpt-failure-rate tlsrpt:example.org <nil>; high tlsrpt-policy-error tlsrpt:example.org sts-policy-fetch-error" {
		t.Fatalf("pager calls %+v", p)
	}

	// tlsa-invalid from a DANE sender: a policy error under the threshold.
	ingest(tlsrpttest.Report{Org: "d.test", ReportID: "4", Start: day, Domain: "Example.NET.", PolicyType: "tlsa", Successful: 100,
		Failures: []tlsrpttest.Failure{{ResultType: "tlsa-invalid", Sessions: 2}}})
	p = pager.calls()
	if len(p) != 2 || kinds(p[1]) != "high tlsrpt-policy-error tlsrpt:example.net tlsa-invalid" || p[1].Changes[0].Detail["policy_type"] != "tlsa" {
		t.Fatalf("pager calls %+v", p)
	}

	// A failing webhook is an error of Check naming the route, and the
	// other route is still served.
	all.mu.Lock()
	all.status = http.StatusInternalServerError
	all.mu.Unlock()
	rep, _, err := Decode(tlsrpttest.Report{Org: "e.test", ReportID: "5", Start: day, Domain: "example.com", PolicyType: "sts", Successful: 1,
		Failures: []tlsrpttest.Failure{{ResultType: "tlsa-invalid", Sessions: 1}}}.JSON())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Check(ctx, s, rep); err == nil || !strings.Contains(err.Error(), "route all") || !strings.Contains(err.Error(), "500") {
		t.Errorf("want the route's 500, got %v", err)
	}
	if len(pager.calls()) != 3 || routes.Failed() != 1 {
		t.Errorf("pager %d calls, %d failed", len(pager.calls()), routes.Failed())
	}
}

// Only the routes named in tlsrpt.alerts get TLS-RPT alerts.
func TestTLSRPTAlertsNamedRoute(t *testing.T) {
	ops, other := newHook(t), newHook(t)
	cfg, err := watch.ParseConfig("w.yaml", []byte(fmt.Sprintf("alerts:\n  - name: ops\n    webhook: %s\n  - name: other\n    webhook: %s\ntlsrpt:\n  alerts: [ops]\n", ops.URL, other.URL)))
	if err != nil {
		t.Fatal(err)
	}
	routes, err := watch.NewRoutes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := &Collector{Store: newSQLite(t), Alerts: &Alerter{FailureRate: cfg.TLSRPT.FailureRate, Send: RoutesSender(routes, cfg.TLSRPT.Alerts, nil)}}
	r := tlsrpttest.Report{Org: "a.test", ReportID: "1", Start: day, Domain: "example.org", PolicyType: "sts", Successful: 5,
		Failures: []tlsrpttest.Failure{{ResultType: "sts-policy-fetch-error", Sessions: 1}}}
	if _, err := c.IngestPayload(context.Background(), r.JSON(), Source{}); err != nil {
		t.Fatal(err)
	}
	if len(ops.calls()) != 1 || len(other.calls()) != 0 {
		t.Fatalf("ops %d calls, other %d", len(ops.calls()), len(other.calls()))
	}
	// Rate 1 of 6 is above 5 % but under min_sessions 10: no failure-rate change.
	if k := kinds(ops.calls()[0]); strings.Contains(k, "failure-rate") {
		t.Errorf("changes %s", k)
	}
}
