package tlsrpt

import (
	"context"
	"time"

	"github.com/starttls-go/starttls/watch"
	"github.com/starttls-go/starttls/watch/store"
)

// ChangeKindPrefix starts the kind of a TLS-RPT alert in a watch alert (the kind of a
// tlsrpt.Alert with this prefix), so that a receiver of both tells them
// from watch's own changes.
const ChangeKindPrefix = "tlsrpt-"

// Change turns the alert into a change of a watch alert: subject
// "tlsrpt:" and the policy domain, kind "tlsrpt-" and the rule, severity
// high for a broken policy or a failure rate above the threshold and
// medium for a new failure type; the report's fields go in Detail.
func (a Alert) Change(at time.Time) store.Change {
	sev := "high"
	if a.Kind == AlertNewFailureType {
		sev = "medium"
	}
	d := map[string]any{"policy_domain": a.PolicyDomain, "policy_type": a.PolicyType,
		"organization": a.Organization, "report_id": a.ReportID}
	if a.ResultType != "" {
		d["result_type"] = a.ResultType
	}
	if a.Sessions != 0 {
		d["sessions"] = a.Sessions
	}
	if a.FailureRate != 0 {
		d["failure_rate"] = a.FailureRate
	}
	return store.Change{Subject: "tlsrpt:" + a.PolicyDomain, At: at.UTC(), Kind: ChangeKindPrefix + a.Kind,
		Severity: sev, Message: a.Message, Detail: d}
}

// RoutesSender is an Alerter.Send that sends a report's alerts as one
// watch alert along the routes names of r (every route when empty).
func RoutesSender(r *watch.Routes, names []string, now func() time.Time) func(context.Context, []Alert) error {
	if now == nil {
		now = time.Now
	}
	return func(ctx context.Context, alerts []Alert) error {
		at := now()
		cs := make([]store.Change, len(alerts))
		for i, a := range alerts {
			cs[i] = a.Change(at)
		}
		return r.Send(ctx, names, cs)
	}
}
