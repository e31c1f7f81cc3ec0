package tlsrpt

import (
	"context"
	"fmt"
	"strings"
	"time"
)

// Alert kinds.
const (
	// AlertFailureRate: a policy's failure rate in one report is above the threshold.
	AlertFailureRate = "failure-rate"
	// AlertNewFailureType: a result type never reported before for the policy domain.
	AlertNewFailureType = "new-failure-type"
	// AlertPolicyError: a sender could not fetch the MTA-STS policy or found
	// the TLSA records invalid: the published policy itself is broken.
	AlertPolicyError = "policy-error"
)

// Alert is one thing worth telling an administrator.
type Alert struct {
	Kind         string  `json:"kind"`
	PolicyDomain string  `json:"policy_domain"`
	PolicyType   string  `json:"policy_type"`
	Organization string  `json:"organization"`
	ReportID     string  `json:"report_id"`
	ResultType   string  `json:"result_type,omitempty"`
	Sessions     int64   `json:"sessions,omitempty"`
	FailureRate  float64 `json:"failure_rate,omitempty"`
	Message      string  `json:"message"`
}

// Alerter decides on alerts for each newly stored report and hands
// them to Send (RoutesSender: watch's alert routes, webhook and mail).
type Alerter struct {
	// Send delivers the alerts of one report; nil only evaluates.
	Send func(ctx context.Context, alerts []Alert) error
	// FailureRate is the threshold (0.05 = 5 %); 0 disables that rule.
	FailureRate float64
	// MinSessions is how many sessions a policy needs before its rate
	// counts (default 10), so that one failure in two sessions is not news.
	MinSessions int64
	// Notify, when set, is called with the alerts too (tests).
	Notify func([]Alert)
}

// Check computes the alerts for rep, which s has just stored, and sends them.
func (a *Alerter) Check(ctx context.Context, s *Store, rep *Report) error {
	alerts, err := a.Evaluate(ctx, s, rep)
	if err != nil || len(alerts) == 0 {
		return err
	}
	if a.Notify != nil {
		a.Notify(alerts)
	}
	if a.Send == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	return a.Send(ctx, alerts)
}

// Evaluate applies the rules without sending anything.
func (a *Alerter) Evaluate(ctx context.Context, s *Store, rep *Report) ([]Alert, error) {
	minSessions := a.MinSessions
	if minSessions <= 0 {
		minSessions = 10
	}
	var out []Alert
	seen := map[string]bool{}
	for _, p := range rep.Policies {
		base := Alert{PolicyDomain: strings.ToLower(strings.TrimSuffix(p.Policy.Domain, ".")), PolicyType: p.Policy.Type,
			Organization: rep.OrganizationName, ReportID: rep.ReportID}
		total := p.Summary.Successful + p.Summary.Failed
		if r := failRate(p.Summary.Successful, p.Summary.Failed); a.FailureRate > 0 && total >= minSessions && r > a.FailureRate {
			al := base
			al.Kind, al.FailureRate, al.Sessions = AlertFailureRate, r, p.Summary.Failed
			al.Message = fmt.Sprintf("%s reports %.1f%% failed sessions (%d of %d) for %s policy of %s, above %.1f%%",
				rep.OrganizationName, 100*r, p.Summary.Failed, total, p.Policy.Type, base.PolicyDomain, 100*a.FailureRate)
			out = append(out, al)
		}
		for _, f := range p.FailureDetails {
			key := base.PolicyDomain + "\x00" + f.ResultType
			if seen[key] {
				continue
			}
			seen[key] = true
			al := base
			al.ResultType, al.Sessions = f.ResultType, f.FailedSessionCount
			if f.ResultType == "sts-policy-fetch-error" || f.ResultType == "tlsa-invalid" {
				al.Kind = AlertPolicyError
				al.Message = fmt.Sprintf("%s reports %s for %s: the published policy is broken for that sender", rep.OrganizationName, f.ResultType, base.PolicyDomain)
				out = append(out, al)
			}
			var before int64
			err := s.DB.QueryRowContext(ctx, s.q(`SELECT count(*) FROM tlsrpt_failures f
				JOIN tlsrpt_policies p ON f.policy = p.id JOIN tlsrpt_reports r ON p.report = r.id
				WHERE p.policy_domain = ? AND f.result_type = ? AND NOT (r.organization = ? AND r.report_id = ?)`),
				base.PolicyDomain, f.ResultType, rep.OrganizationName, rep.ReportID).Scan(&before)
			if err != nil {
				return nil, err
			}
			if before == 0 {
				al.Kind = AlertNewFailureType
				al.Message = fmt.Sprintf("first %s failure reported for %s (by %s)", f.ResultType, base.PolicyDomain, rep.OrganizationName)
				out = append(out, al)
			}
		}
	}
	return out, nil
}
