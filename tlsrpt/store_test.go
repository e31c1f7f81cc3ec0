package tlsrpt

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

func newSQLite(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "tlsrpt.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// storeScenario runs the same checks on any store: dedup, quarantine,
// counts, summary and alerts.
func storeScenario(t *testing.T, s *Store) {
	ctx := context.Background()
	var alerts []Alert
	c := &Collector{Store: s, Now: func() time.Time { return day.Add(30 * time.Hour) },
		Alerts: &Alerter{FailureRate: 0.05, Notify: func(a []Alert) { alerts = append(alerts, a...) }}}
	first := allTypesReport("google.com", "g-1")
	o, err := c.IngestPayload(ctx, tlsrpttest.Gzip(first.JSON()), Source{Kind: "file"})
	if err != nil || !o.Stored {
		t.Fatalf("first: %+v %v", o, err)
	}
	// 66 of 966 sessions failed (6.8 % > 5 %), 11 new types, 2 policy errors.
	kinds := map[string]int{}
	for _, a := range alerts {
		kinds[a.Kind]++
	}
	if kinds[AlertFailureRate] != 1 || kinds[AlertNewFailureType] != 11 || kinds[AlertPolicyError] != 2 {
		t.Errorf("alerts %v", kinds)
	}
	// The same report again (by SMTP this time) is a duplicate: nothing added, no alert.
	alerts = nil
	o, err = c.IngestPayload(ctx, first.JSON(), Source{Kind: "smtp"})
	if err != nil || o.Stored || !o.Duplicate || len(alerts) != 0 {
		t.Fatalf("duplicate: %+v %v %v", o, err, alerts)
	}
	// A second sender, next day, only successes and one known failure type.
	second := tlsrpttest.Report{Org: "microsoft.com", ReportID: "m-1", Start: day.Add(24 * time.Hour), Domain: "Example.ORG", PolicyType: "sts",
		Successful: 1000, Failures: []tlsrpttest.Failure{{ResultType: "certificate-expired", Sessions: 2}}}
	if o, err := c.IngestPayload(ctx, second.JSON(), Source{Kind: "https"}); err != nil || !o.Stored {
		t.Fatalf("second: %+v %v", o, err)
	}
	if len(alerts) != 0 {
		t.Errorf("a known failure type under the threshold alerted: %+v", alerts)
	}
	o, err = c.IngestPayload(ctx, []byte(`{"organization-name": 5}`), Source{Kind: "https", Remote: "127.0.0.1:1"})
	if err != nil || !o.Quarantined || !strings.Contains(o.Reason, "JSON") {
		t.Fatalf("bad: %+v %v", o, err)
	}
	n, err := s.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n.Reports != 2 || n.Policies != 2 || n.Failures != 12 || n.Quarantined != 1 || n.FailuresByType["certificate-expired"] != 3+2 || len(n.RowsByType) != 11 {
		t.Errorf("counts %+v", n)
	}
	sum, err := Summarize(ctx, s.DB, s.Dialect, "example.org.", day.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if sum.Reports != 2 || sum.Successful != 1900 || sum.Failed != 68 || len(sum.Organizations) != 2 || len(sum.Days) != 2 ||
		len(sum.Failures) != 11 || sum.Quarantined != 1 || len(sum.Policies) != 1 || sum.Policies[0].Reports != 2 {
		t.Errorf("summary %+v", sum)
	}
	if sum.Failures[0].ResultType != "sts-webpki-invalid" || sum.Failures[0].Sessions != 11 || !sum.Failures[0].Known {
		t.Errorf("top failure %+v", sum.Failures[0])
	}
	if d := sum.Days[1]; d.Day != "2026-12-02" || d.Failed != 2 || d.Successful != 1000 {
		t.Errorf("day 2 %+v", d)
	}
	// Another domain and a later window see nothing.
	for _, q := range []struct {
		domain string
		since  time.Time
	}{{"other.example", day}, {"", day.Add(72 * time.Hour)}} {
		sum, err := Summarize(ctx, s.DB, s.Dialect, q.domain, q.since)
		if err != nil || sum.Reports != 0 || len(sum.Failures) != 0 {
			t.Errorf("%v: %+v %v", q, sum, err)
		}
	}
}

func TestStoreSQLite(t *testing.T) { storeScenario(t, newSQLite(t)) }

// One transaction per report: a failure midway leaves nothing behind.
func TestSaveAtomic(t *testing.T) {
	s := newSQLite(t)
	ctx := context.Background()
	if _, err := s.DB.Exec(`CREATE TRIGGER boom BEFORE INSERT ON tlsrpt_failures WHEN NEW.result_type = 'dane-required'
		BEGIN SELECT RAISE(ABORT, 'boom'); END`); err != nil {
		t.Fatal(err)
	}
	c := &Collector{Store: s}
	if _, err := c.IngestPayload(ctx, allTypesReport("o", "r").JSON(), Source{}); err == nil || !strings.Contains(err.Error(), "boom") {
		t.Fatalf("want the trigger's error, got %v", err)
	}
	n, err := s.Count(ctx)
	if err != nil || n.Reports != 0 || n.Policies != 0 || n.Failures != 0 {
		t.Fatalf("half-stored: %+v %v", n, err)
	}
}

func TestQuarantineCapped(t *testing.T) {
	s := newSQLite(t)
	big := make([]byte, MaxQuarantineBytes+1000)
	if err := s.Quarantine(context.Background(), big, Source{Kind: "smtp"}, "reason\x00", time.Now()); err != nil {
		t.Fatal(err)
	}
	var size, stored int64
	if err := s.DB.QueryRow(`SELECT size, length(raw) FROM tlsrpt_quarantine`).Scan(&size, &stored); err != nil {
		t.Fatal(err)
	}
	if size != int64(len(big)) || stored != MaxQuarantineBytes {
		t.Errorf("size %d stored %d", size, stored)
	}
}
