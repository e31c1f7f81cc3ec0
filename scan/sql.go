package scan

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite" (pure Go)
)

// dialect holds what differs between SQLite and PostgreSQL: column types
// and placeholders. Tables, columns and keys are the same in both.
type dialect struct {
	name      string
	timestamp string // type of scanned_at
	real      string // type of the timings
	json      string // type of report
	dollar    bool   // $1 placeholders, else ?
	lock      string // statement run first in the schema transaction
}

var (
	sqliteDialect   = dialect{name: "sqlite", timestamp: "TEXT", real: "REAL", json: "TEXT"}
	postgresDialect = dialect{name: "postgres", timestamp: "TIMESTAMPTZ", real: "DOUBLE PRECISION", json: "JSONB", dollar: true,
		// Several shards may create the schema at once: serialise them.
		lock: "SELECT pg_advisory_xact_lock(7307201)"}
)

// Schema returns the CREATE statements of the sink's tables for a
// dialect ("sqlite" or "postgres"), as documented in docs/scan.md.
func Schema(name string) []string {
	d := sqliteDialect
	if name == "postgres" {
		d = postgresDialect
	}
	return d.schema()
}

func (d dialect) schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS targets (
	target   TEXT PRIMARY KEY,
	protocol TEXT NOT NULL,
	host     TEXT NOT NULL,
	port     INTEGER NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS results (
	target       TEXT PRIMARY KEY REFERENCES targets (target),
	ip           TEXT NOT NULL,
	status       TEXT NOT NULL,
	error        TEXT NOT NULL,
	grade        TEXT NOT NULL,
	tls_version  TEXT NOT NULL,
	cipher_suite TEXT NOT NULL,
	attempts     INTEGER NOT NULL,
	shard        TEXT NOT NULL,
	scanned_at   ` + d.timestamp + ` NOT NULL,
	total_ms     ` + d.real + ` NOT NULL,
	check_ms     ` + d.real + ` NOT NULL,
	connect_ms   ` + d.real + ` NOT NULL,
	handshake_ms ` + d.real + ` NOT NULL,
	report       ` + d.json + `
)`,
		`CREATE TABLE IF NOT EXISTS findings (
	target   TEXT NOT NULL REFERENCES targets (target),
	id       TEXT NOT NULL,
	severity TEXT NOT NULL,
	PRIMARY KEY (target, id)
)`,
		`CREATE INDEX IF NOT EXISTS results_status ON results (status)`,
		`CREATE INDEX IF NOT EXISTS findings_id ON findings (id)`,
	}
}

// SQL stores records in SQLite or PostgreSQL, one transaction per batch
// with multi-row statements.
type SQL struct {
	db *sql.DB
	d  dialect
}

// OpenSQLite opens (creating) an SQLite database file.
func OpenSQLite(ctx context.Context, path string) (*SQL, error) {
	if path == "" {
		return nil, fmt.Errorf("sqlite: no file name")
	}
	dsn := "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1) // SQLite has one writer; Stored and Write take turns
	return openSQL(ctx, db, sqliteDialect)
}

// OpenPostgres connects to a PostgreSQL database given as a libpq URL
// (postgres://user@host:port/db?sslmode=verify-full&sslrootcert=ca.pem).
func OpenPostgres(ctx context.Context, url string) (*SQL, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(4)
	return openSQL(ctx, db, postgresDialect)
}

func openSQL(ctx context.Context, db *sql.DB, d dialect) (*SQL, error) {
	s := &SQL{db: db, d: d}
	if err := s.createSchema(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("%s: creating the schema: %w", d.name, err)
	}
	return s, nil
}

func (s *SQL) createSchema(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if s.d.lock != "" {
		if _, err := tx.ExecContext(ctx, s.d.lock); err != nil {
			return err
		}
	}
	for _, q := range s.d.schema() {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// DB is the underlying database, for queries.
func (s *SQL) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *SQL) Close() error { return s.db.Close() }

// values returns "(p,p,p),(p,p,p)" for rows×cols placeholders.
func (s *SQL) values(rows, cols int) string {
	var b strings.Builder
	n := 0
	for r := range rows {
		if r > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('(')
		for c := range cols {
			if c > 0 {
				b.WriteByte(',')
			}
			n++
			if s.d.dollar {
				b.WriteString("$" + strconv.Itoa(n))
			} else {
				b.WriteByte('?')
			}
		}
		b.WriteByte(')')
	}
	return b.String()
}

// maxRows bounds the rows of one statement (parameter limits: SQLite
// 32766, PostgreSQL 65535).
const maxRows = 500

// Write upserts the batch in one transaction: a target scanned again
// replaces its result and findings.
func (s *SQL) Write(ctx context.Context, recs []Record) error {
	// One row per target: within a statement a key may appear only once.
	seen := make(map[string]int, len(recs))
	uniq := recs[:0:0]
	for _, r := range recs {
		if i, ok := seen[r.Target]; ok {
			uniq[i] = r
			continue
		}
		seen[r.Target] = len(uniq)
		uniq = append(uniq, r)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	for start := 0; start < len(uniq); start += maxRows {
		part := uniq[start:min(start+maxRows, len(uniq))]
		if err := s.writeRows(ctx, tx, part); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (s *SQL) writeRows(ctx context.Context, tx *sql.Tx, recs []Record) error {
	var args []any
	for _, r := range recs {
		args = append(args, r.Target, r.Protocol, r.Host, r.Port)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO targets (target, protocol, host, port) VALUES "+
		s.values(len(recs), 4)+" ON CONFLICT (target) DO NOTHING", args...); err != nil {
		return fmt.Errorf("targets: %w", err)
	}
	cols := []string{"target", "ip", "status", "error", "grade", "tls_version", "cipher_suite", "attempts", "shard",
		"scanned_at", "total_ms", "check_ms", "connect_ms", "handshake_ms", "report"}
	args = args[:0]
	for _, r := range recs {
		var report any
		if r.Report != nil {
			b, err := json.Marshal(r.Report)
			if err != nil {
				return err
			}
			report = string(b)
		}
		var at any = r.ScannedAt
		if !s.d.dollar {
			at = r.ScannedAt.UTC().Format(time.RFC3339Nano)
		}
		args = append(args, r.Target, r.IP, string(r.Status), r.Error, r.Grade, r.TLSVersion, r.CipherSuite, r.Attempts, r.Shard,
			at, r.Timings.TotalMS, r.Timings.CheckMS, r.Timings.ConnectMS, r.Timings.HandshakeMS, report)
	}
	var set []string
	for _, c := range cols[1:] {
		set = append(set, c+" = excluded."+c)
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO results ("+strings.Join(cols, ", ")+") VALUES "+
		s.values(len(recs), len(cols))+" ON CONFLICT (target) DO UPDATE SET "+strings.Join(set, ", "), args...); err != nil {
		return fmt.Errorf("results: %w", err)
	}
	args = args[:0]
	for _, r := range recs {
		args = append(args, r.Target)
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM findings WHERE target IN "+s.values(1, len(recs)), args...); err != nil {
		return fmt.Errorf("findings: %w", err)
	}
	args = args[:0]
	n := 0
	for _, r := range recs {
		ids := map[string]bool{}
		for _, f := range r.Findings {
			if ids[f.ID] {
				continue
			}
			ids[f.ID] = true
			args = append(args, r.Target, f.ID, f.Severity)
			n++
		}
	}
	for start := 0; start < n; start += maxRows {
		k := min(maxRows, n-start)
		if _, err := tx.ExecContext(ctx, "INSERT INTO findings (target, id, severity) VALUES "+s.values(k, 3),
			args[start*3:(start+k)*3]...); err != nil {
			return fmt.Errorf("findings: %w", err)
		}
	}
	return nil
}

// Stored returns the keys that have a result.
func (s *SQL) Stored(ctx context.Context, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	for start := 0; start < len(keys); start += maxRows {
		part := keys[start:min(start+maxRows, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		rows, err := s.db.QueryContext(ctx, "SELECT target FROM results WHERE target IN "+s.values(1, len(part)), args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return nil, err
			}
			out[k] = true
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if err := rows.Err(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
