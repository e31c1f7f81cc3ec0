package tlsrpt

import (
	"context"
	"database/sql"
	"sort"
	"strings"
	"time"

	"github.com/starttls-go/starttls/mail"
)

// SummarySchema identifies `starttls tlsrpt summary --json` output.
const SummarySchema = "starttls.tlsrpt-summary/v1"

// Summary is what the stored reports say about a period.
type Summary struct {
	Schema string    `json:"schema"`
	Domain string    `json:"domain,omitempty"` // filter; empty for every policy domain
	Since  time.Time `json:"since"`
	// Reports counts stored reports whose period ends at or after Since;
	// Quarantined the inputs rejected since then.
	Reports     int64 `json:"reports"`
	Quarantined int64 `json:"quarantined"`
	Successful  int64 `json:"successful_sessions"`
	Failed      int64 `json:"failed_sessions"`
	// FailureRate is Failed / (Successful + Failed), 0 with no sessions.
	FailureRate   float64         `json:"failure_rate"`
	Policies      []PolicyTotal   `json:"policies"`
	Organizations []OrgTotal      `json:"organizations"`
	Failures      []FailureTotal  `json:"failures"`
	Days          []DayTotal      `json:"days"`
	LastReceived  *time.Time      `json:"last_received,omitempty"`
	RecentReasons []QuarantineRow `json:"recent_quarantine"`
}

// PolicyTotal adds up one policy (type, domain and MX patterns).
type PolicyTotal struct {
	Type        string  `json:"policy_type"`
	Domain      string  `json:"policy_domain"`
	MXHosts     string  `json:"mx_host,omitempty"`
	Reports     int64   `json:"reports"`
	Successful  int64   `json:"successful_sessions"`
	Failed      int64   `json:"failed_sessions"`
	FailureRate float64 `json:"failure_rate"`
}

// OrgTotal adds up one sending organization's reports.
type OrgTotal struct {
	Organization string  `json:"organization"`
	Reports      int64   `json:"reports"`
	Successful   int64   `json:"successful_sessions"`
	Failed       int64   `json:"failed_sessions"`
	FailureRate  float64 `json:"failure_rate"`
}

// FailureTotal adds up one result type.
type FailureTotal struct {
	ResultType string   `json:"result_type"`
	Known      bool     `json:"known"` // one of RFC 8460 §4.3's
	Sessions   int64    `json:"sessions"`
	Details    int64    `json:"details"` // failure-detail rows
	MXHosts    []string `json:"mx_hosts,omitempty"`
}

// DayTotal is one UTC day (by report start) of the trend.
type DayTotal struct {
	Day         string  `json:"day"`
	Reports     int64   `json:"reports"`
	Successful  int64   `json:"successful_sessions"`
	Failed      int64   `json:"failed_sessions"`
	FailureRate float64 `json:"failure_rate"`
}

// QuarantineRow is one rejected input.
type QuarantineRow struct {
	Received time.Time `json:"received"`
	Source   string    `json:"source"`
	Reason   string    `json:"reason"`
	Size     int64     `json:"size"`
}

func failRate(ok, failed int64) float64 {
	if ok+failed == 0 {
		return 0
	}
	return float64(failed) / float64(ok+failed)
}

// Summarize reads the tlsrpt_* tables of db (dialect "sqlite" or
// "postgres") for reports whose period ends at or after since, restricted
// to one policy domain when domain is not empty. It is what `starttls
// tlsrpt summary` prints, and what a dashboard shows for a domain.
func Summarize(ctx context.Context, db *sql.DB, dialect, domain string, since time.Time) (*Summary, error) {
	domain = strings.ToLower(strings.TrimSuffix(domain, "."))
	s := &Summary{Schema: SummarySchema, Domain: domain, Since: since.UTC(), Policies: []PolicyTotal{},
		Organizations: []OrgTotal{}, Failures: []FailureTotal{}, Days: []DayTotal{}, RecentReasons: []QuarantineRow{}}
	q := func(query string) string { return rebind(dialect, query) }
	filter := ` WHERE r.end_unix >= ?`
	args := []any{since.Unix()}
	if domain != "" {
		filter += ` AND p.policy_domain = ?`
		args = append(args, domain)
	}
	rows, err := db.QueryContext(ctx, q(`SELECT r.id, r.organization, r.start_unix, r.received_unix,
		p.policy_type, p.policy_domain, p.mx_host, p.successful, p.failed
		FROM tlsrpt_reports r JOIN tlsrpt_policies p ON p.report = r.id`+filter+` ORDER BY r.id, p.id`), args...)
	if err != nil {
		return nil, err
	}
	type pkey struct{ typ, domain, mx string }
	pols := map[pkey]*PolicyTotal{}
	polReports := map[pkey]map[int64]bool{}
	orgs := map[string]*OrgTotal{}
	orgReports := map[string]map[int64]bool{}
	days := map[string]*DayTotal{}
	dayReports := map[string]map[int64]bool{}
	reports := map[int64]bool{}
	var last int64
	for rows.Next() {
		var id, start, received, ok, failed int64
		var org, typ, dom, mx string
		if err := rows.Scan(&id, &org, &start, &received, &typ, &dom, &mx, &ok, &failed); err != nil {
			rows.Close()
			return nil, err
		}
		reports[id] = true
		last = max(last, received)
		s.Successful += ok
		s.Failed += failed
		k := pkey{typ, dom, mx}
		if pols[k] == nil {
			pols[k] = &PolicyTotal{Type: typ, Domain: dom, MXHosts: mx}
			polReports[k] = map[int64]bool{}
		}
		pols[k].Successful += ok
		pols[k].Failed += failed
		polReports[k][id] = true
		if orgs[org] == nil {
			orgs[org] = &OrgTotal{Organization: org}
			orgReports[org] = map[int64]bool{}
		}
		orgs[org].Successful += ok
		orgs[org].Failed += failed
		orgReports[org][id] = true
		day := time.Unix(start, 0).UTC().Format(time.DateOnly)
		if days[day] == nil {
			days[day] = &DayTotal{Day: day}
			dayReports[day] = map[int64]bool{}
		}
		days[day].Successful += ok
		days[day].Failed += failed
		dayReports[day][id] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	s.Reports = int64(len(reports))
	s.FailureRate = failRate(s.Successful, s.Failed)
	if last > 0 {
		t := time.Unix(last, 0).UTC()
		s.LastReceived = &t
	}
	for k, p := range pols {
		p.Reports, p.FailureRate = int64(len(polReports[k])), failRate(p.Successful, p.Failed)
		s.Policies = append(s.Policies, *p)
	}
	sort.Slice(s.Policies, func(i, j int) bool {
		a, b := s.Policies[i], s.Policies[j]
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		if a.Type != b.Type {
			return a.Type < b.Type
		}
		return a.MXHosts < b.MXHosts
	})
	for k, o := range orgs {
		o.Reports, o.FailureRate = int64(len(orgReports[k])), failRate(o.Successful, o.Failed)
		s.Organizations = append(s.Organizations, *o)
	}
	sort.Slice(s.Organizations, func(i, j int) bool { return s.Organizations[i].Organization < s.Organizations[j].Organization })
	for k, d := range days {
		d.Reports, d.FailureRate = int64(len(dayReports[k])), failRate(d.Successful, d.Failed)
		s.Days = append(s.Days, *d)
	}
	sort.Slice(s.Days, func(i, j int) bool { return s.Days[i].Day < s.Days[j].Day })
	if err := s.failures(ctx, db, q(`SELECT f.result_type, f.failed_sessions, f.receiving_mx_hostname
		FROM tlsrpt_failures f JOIN tlsrpt_policies p ON f.policy = p.id JOIN tlsrpt_reports r ON p.report = r.id`+filter), args); err != nil {
		return nil, err
	}
	if err := s.quarantine(ctx, db, q); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Summary) failures(ctx context.Context, db *sql.DB, query string, args []any) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	byType := map[string]*FailureTotal{}
	for rows.Next() {
		var typ, mx string
		var n int64
		if err := rows.Scan(&typ, &n, &mx); err != nil {
			return err
		}
		f := byType[typ]
		if f == nil {
			f = &FailureTotal{ResultType: typ, Known: mail.KnownResultType(typ)}
			byType[typ] = f
		}
		f.Sessions += n
		f.Details++
		mx = strings.ToLower(mx)
		if mx != "" && len(f.MXHosts) < 20 && !containsString(f.MXHosts, mx) {
			f.MXHosts = append(f.MXHosts, mx)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, f := range byType {
		sort.Strings(f.MXHosts)
		s.Failures = append(s.Failures, *f)
	}
	sort.Slice(s.Failures, func(i, j int) bool {
		a, b := s.Failures[i], s.Failures[j]
		if a.Sessions != b.Sessions {
			return a.Sessions > b.Sessions
		}
		return a.ResultType < b.ResultType
	})
	return nil
}

// quarantine counts rejected inputs since Since (they have no policy
// domain, so the domain filter does not apply) and lists the last few.
func (s *Summary) quarantine(ctx context.Context, db *sql.DB, q func(string) string) error {
	if err := db.QueryRowContext(ctx, q(`SELECT count(*) FROM tlsrpt_quarantine WHERE received_unix >= ?`), s.Since.Unix()).Scan(&s.Quarantined); err != nil {
		return err
	}
	rows, err := db.QueryContext(ctx, q(`SELECT received_unix, source, reason, size FROM tlsrpt_quarantine
		WHERE received_unix >= ? ORDER BY id DESC LIMIT 5`), s.Since.Unix())
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var r QuarantineRow
		var at int64
		if err := rows.Scan(&at, &r.Source, &r.Reason, &r.Size); err != nil {
			return err
		}
		r.Received = time.Unix(at, 0).UTC()
		s.RecentReasons = append(s.RecentReasons, r)
	}
	return rows.Err()
}

func containsString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
