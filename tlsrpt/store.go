package tlsrpt

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite" (pure Go)

	"github.com/starttls-go/starttls/internal/sqldb"
)

// Dialects accepted by OpenDB and Summarize.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// MaxQuarantineBytes caps the raw bytes kept of one quarantined input.
const MaxQuarantineBytes = 256 << 10

// Store keeps reports in tables tlsrpt_reports, tlsrpt_policies,
// tlsrpt_failures and tlsrpt_quarantine of one database.
type Store struct {
	DB      *sql.DB
	Dialect string
}

// Source says where a report came from, for the record.
type Source struct {
	Kind   string // smtp, https, imap, file
	Remote string // client address, mailbox, file name
	Detail string // Message-ID, TLS version, ...
}

func (s Source) String() string {
	out := s.Kind
	if s.Remote != "" {
		out += " " + s.Remote
	}
	if s.Detail != "" {
		out += " (" + s.Detail + ")"
	}
	return out
}

// Open opens a store: a postgres:// or postgresql:// URL, or else an
// SQLite file name (an optional "sqlite:" prefix is dropped). The schema is
// created when missing.
func Open(ctx context.Context, dsn string) (*Store, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(4)
		return OpenDB(ctx, db, Postgres)
	}
	path := strings.TrimPrefix(dsn, "sqlite:")
	if path == "" {
		return nil, errors.New("sqlite: no file name")
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // one writer; transactions take turns
	return OpenDB(ctx, db, SQLite)
}

// OpenDB uses an open database (shared with other tables, e.g. the watch
// service's) and creates the tlsrpt_* tables when missing.
func OpenDB(ctx context.Context, db *sql.DB, dialect string) (*Store, error) {
	if dialect != SQLite && dialect != Postgres {
		return nil, fmt.Errorf("tlsrpt: unknown SQL dialect %q", dialect)
	}
	s := &Store{DB: db, Dialect: dialect}
	id, blob := "INTEGER PRIMARY KEY", "BLOB"
	if dialect == Postgres {
		id, blob = "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "BYTEA"
	}
	// Times are Unix seconds in both dialects, so queries and the
	// per-day trend are the same SQL everywhere.
	schema := []string{
		`CREATE TABLE IF NOT EXISTS tlsrpt_reports (
			id ` + id + `,
			organization TEXT NOT NULL,
			report_id TEXT NOT NULL,
			contact_info TEXT NOT NULL,
			start_unix BIGINT NOT NULL,
			end_unix BIGINT NOT NULL,
			received_unix BIGINT NOT NULL,
			source TEXT NOT NULL,
			raw_json ` + blob + ` NOT NULL,
			UNIQUE (organization, report_id))`,
		`CREATE TABLE IF NOT EXISTS tlsrpt_policies (
			id ` + id + `,
			report BIGINT NOT NULL REFERENCES tlsrpt_reports(id) ON DELETE CASCADE,
			policy_type TEXT NOT NULL,
			policy_domain TEXT NOT NULL,
			policy_string TEXT NOT NULL,
			mx_host TEXT NOT NULL,
			successful BIGINT NOT NULL,
			failed BIGINT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS tlsrpt_failures (
			id ` + id + `,
			policy BIGINT NOT NULL REFERENCES tlsrpt_policies(id) ON DELETE CASCADE,
			result_type TEXT NOT NULL,
			sending_mta_ip TEXT NOT NULL,
			receiving_mx_hostname TEXT NOT NULL,
			receiving_mx_helo TEXT NOT NULL,
			receiving_ip TEXT NOT NULL,
			failed_sessions BIGINT NOT NULL,
			additional_information TEXT NOT NULL,
			failure_reason_code TEXT NOT NULL)`,
		`CREATE TABLE IF NOT EXISTS tlsrpt_quarantine (
			id ` + id + `,
			received_unix BIGINT NOT NULL,
			source TEXT NOT NULL,
			reason TEXT NOT NULL,
			size BIGINT NOT NULL,
			raw ` + blob + ` NOT NULL)`,
		`CREATE INDEX IF NOT EXISTS tlsrpt_reports_start ON tlsrpt_reports (start_unix)`,
		`CREATE INDEX IF NOT EXISTS tlsrpt_policies_report ON tlsrpt_policies (report)`,
		`CREATE INDEX IF NOT EXISTS tlsrpt_policies_domain ON tlsrpt_policies (policy_domain)`,
		`CREATE INDEX IF NOT EXISTS tlsrpt_failures_policy ON tlsrpt_failures (policy)`,
	}
	for _, q := range schema {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: creating the tlsrpt schema: %w", dialect, err)
		}
	}
	return s, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.DB.Close() }

// q turns ? placeholders into $n for PostgreSQL.
func (s *Store) q(query string) string { return rebind(s.Dialect, query) }

func rebind(dialect, query string) string {
	if dialect != Postgres {
		return query
	}
	return sqldb.Rebind(query)
}

// Save stores a validated report with all its policies and failure
// details in one transaction. A report already stored (same organization
// and report-id) is left alone and Save returns stored=false.
func (s *Store) Save(ctx context.Context, rep *Report, raw []byte, src Source, now time.Time) (stored bool, err error) {
	tx, err := s.DB.BeginTx(ctx, nil)
	if err != nil {
		return false, err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var id int64
	err = tx.QueryRowContext(ctx, s.q(`INSERT INTO tlsrpt_reports
		(organization, report_id, contact_info, start_unix, end_unix, received_unix, source, raw_json)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (organization, report_id) DO NOTHING RETURNING id`),
		rep.OrganizationName, rep.ReportID, rep.ContactInfo, rep.DateRange.Start.Unix(), rep.DateRange.End.Unix(),
		now.Unix(), src.String(), raw).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, tx.Rollback()
	}
	if err != nil {
		return false, fmt.Errorf("storing report: %w", err)
	}
	for _, p := range rep.Policies {
		var pid int64
		err = tx.QueryRowContext(ctx, s.q(`INSERT INTO tlsrpt_policies
			(report, policy_type, policy_domain, policy_string, mx_host, successful, failed)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`),
			id, p.Policy.Type, strings.ToLower(strings.TrimSuffix(p.Policy.Domain, ".")), strings.Join(p.Policy.String, "\n"),
			strings.ToLower(strings.Join(p.Policy.MXHost, " ")), p.Summary.Successful, p.Summary.Failed).Scan(&pid)
		if err != nil {
			return false, fmt.Errorf("storing policy: %w", err)
		}
		for _, f := range p.FailureDetails {
			_, err = tx.ExecContext(ctx, s.q(`INSERT INTO tlsrpt_failures
				(policy, result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip,
				 failed_sessions, additional_information, failure_reason_code)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`),
				pid, f.ResultType, f.SendingMTAIP, f.ReceivingMXHostname, f.ReceivingMXHelo, f.ReceivingIP,
				f.FailedSessionCount, f.AdditionalInformation, f.FailureReasonCode)
			if err != nil {
				return false, fmt.Errorf("storing failure detail: %w", err)
			}
		}
	}
	if err = tx.Commit(); err != nil {
		return false, err
	}
	return true, nil
}

// Quarantine keeps a rejected input (capped at MaxQuarantineBytes) with
// the reason, for an administrator to inspect.
func (s *Store) Quarantine(ctx context.Context, raw []byte, src Source, reason string, now time.Time) error {
	size := len(raw)
	if len(raw) > MaxQuarantineBytes {
		raw = raw[:MaxQuarantineBytes]
	}
	if len(reason) > 2048 {
		reason = reason[:2048]
	}
	reason = strings.ToValidUTF8(strings.ReplaceAll(reason, "\x00", ""), "?")
	_, err := s.DB.ExecContext(ctx, s.q(`INSERT INTO tlsrpt_quarantine (received_unix, source, reason, size, raw)
		VALUES (?, ?, ?, ?, ?)`), now.Unix(), strings.ToValidUTF8(src.String(), "?"), reason, size, raw)
	return err
}

// Counts are the rows of each table, for tests and the CLI.
type Counts struct {
	Reports, Policies, Failures, Quarantined int64
	// FailuresByType sums failed_sessions per result type; RowsByType
	// counts failure-detail rows per result type.
	FailuresByType, RowsByType map[string]int64
}

// Count counts what is stored.
func (s *Store) Count(ctx context.Context) (*Counts, error) {
	c := &Counts{FailuresByType: map[string]int64{}, RowsByType: map[string]int64{}}
	for _, t := range []struct {
		table string
		v     *int64
	}{{"tlsrpt_reports", &c.Reports}, {"tlsrpt_policies", &c.Policies}, {"tlsrpt_failures", &c.Failures}, {"tlsrpt_quarantine", &c.Quarantined}} {
		if err := s.DB.QueryRowContext(ctx, "SELECT count(*) FROM "+t.table).Scan(t.v); err != nil {
			return nil, err
		}
	}
	rows, err := s.DB.QueryContext(ctx, `SELECT result_type, count(*), sum(failed_sessions) FROM tlsrpt_failures GROUP BY result_type`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var t string
		var n, sum int64
		if err := rows.Scan(&t, &n, &sum); err != nil {
			return nil, err
		}
		c.RowsByType[t], c.FailuresByType[t] = n, sum
	}
	return c, rows.Err()
}
