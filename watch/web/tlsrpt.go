package web

import (
	"context"
	"database/sql"
	"time"

	"github.com/starttls-go/starttls/tlsrpt"
)

// tlsrptSummary is the TLS-RPT collector's summary of a domain's reports
// of the last 30 days, when its tables live in the same database (nil
// when they do not: the collector is optional).
func tlsrptSummary(ctx context.Context, db *sql.DB, dialect, domain string, now time.Time) (*tlsrpt.Summary, error) {
	q := `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('tlsrpt_reports', 'tlsrpt_policies', 'tlsrpt_failures', 'tlsrpt_quarantine')`
	if dialect == "postgres" {
		q = `SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema()
			AND table_name IN ('tlsrpt_reports', 'tlsrpt_policies', 'tlsrpt_failures', 'tlsrpt_quarantine')`
	}
	var n int
	if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil || n < 4 {
		return nil, err
	}
	return tlsrpt.Summarize(ctx, db, dialect, domain, now.AddDate(0, 0, -30))
}
