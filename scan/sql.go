package scan

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
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
		`CREATE TABLE IF NOT EXISTS mx (
	domain     TEXT NOT NULL,
	target     TEXT NOT NULL REFERENCES targets (target),
	preference INTEGER,
	implicit   BOOLEAN NOT NULL,
	PRIMARY KEY (domain, target)
)`,
		`CREATE INDEX IF NOT EXISTS results_status ON results (status)`,
		`CREATE INDEX IF NOT EXISTS findings_id ON findings (id)`,
		`CREATE INDEX IF NOT EXISTS mx_target ON mx (target)`,
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
	for attempt := 1; ; attempt++ {
		err := s.tryCreateSchema(ctx)
		if err == nil || !retryableSQL(err) || attempt == 5 {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt) * 50 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// schemaNames are the tables and indexes of the schema.
var schemaNames = regexp.MustCompile(`IF NOT EXISTS (\w+)`)

func (s *SQL) tryCreateSchema(ctx context.Context) error {
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
	// A complete schema is left alone: DDL on tables that other shards
	// are writing into would wait for (or deadlock with) their locks.
	var names []any
	for _, q := range s.d.schema() {
		if m := schemaNames.FindStringSubmatch(q); m != nil {
			names = append(names, m[1])
		}
	}
	present := "SELECT count(*) FROM sqlite_master WHERE name IN "
	if s.d.dollar {
		present = "SELECT count(*) FROM pg_class WHERE pg_table_is_visible(oid) AND relname IN "
	}
	var n int
	if err := tx.QueryRowContext(ctx, present+s.values(1, len(names)), names...).Scan(&n); err != nil {
		return err
	}
	if n == len(names) {
		return tx.Commit()
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
// replaces its result and findings, a domain scanned again (MX scans)
// replaces its mx rows and domain-level result. A transaction that
// deadlocks with another writer's (shards sharing MX hosts) is retried.
func (s *SQL) Write(ctx context.Context, recs []Record) error {
	// One row per target: within a statement a key may appear only once.
	// Cached MX records repeat the row written by their check: they add
	// only mx rows. Rows go in key order, so that concurrent writers lock
	// shared rows in the same order.
	seen := make(map[string]int, len(recs))
	uniq := recs[:0:0]
	var cached []Record
	for _, r := range recs {
		if r.Cached {
			cached = append(cached, r)
			continue
		}
		if i, ok := seen[r.Target]; ok {
			uniq[i] = r
			continue
		}
		seen[r.Target] = len(uniq)
		uniq = append(uniq, r)
	}
	slices.SortFunc(uniq, func(a, b Record) int { return strings.Compare(a.Target, b.Target) })
	for attempt := 1; ; attempt++ {
		err := s.write(ctx, uniq, cached, recs)
		if err == nil || !retryableSQL(err) || attempt == 5 {
			return err
		}
		select {
		case <-time.After(time.Duration(attempt*attempt) * 20 * time.Millisecond):
		case <-ctx.Done():
			return err
		}
	}
}

// retryableSQL: PostgreSQL's deadlock_detected and serialization_failure.
func retryableSQL(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func (s *SQL) write(ctx context.Context, uniq, cached, all []Record) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	if err := s.clearDomains(ctx, tx, all); err != nil {
		return err
	}
	for start := 0; start < len(uniq); start += maxRows {
		part := uniq[start:min(start+maxRows, len(uniq))]
		if err := s.writeRows(ctx, tx, part); err != nil {
			return err
		}
	}
	if err := s.writeMX(ctx, tx, cached, all); err != nil {
		return err
	}
	return tx.Commit()
}

// clearDomains deletes the mx rows and the domain-level result of every
// domain in the batch: the batch holds each domain's records whole.
func (s *SQL) clearDomains(ctx context.Context, tx *sql.Tx, recs []Record) error {
	var domains []string
	seen := map[string]bool{}
	for _, r := range recs {
		if r.Domain != "" && !seen[r.Domain] {
			seen[r.Domain] = true
			domains = append(domains, r.Domain)
		}
	}
	slices.Sort(domains)
	for start := 0; start < len(domains); start += maxRows {
		part := domains[start:min(start+maxRows, len(domains))]
		args := make([]any, len(part))
		keys := make([]any, len(part))
		for i, d := range part {
			args[i], keys[i] = d, DomainKey(d)
		}
		in := s.values(1, len(part))
		if _, err := tx.ExecContext(ctx, "DELETE FROM mx WHERE domain IN "+in, args...); err != nil {
			return fmt.Errorf("mx: %w", err)
		}
		for _, table := range []string{"findings", "results", "targets"} {
			if _, err := tx.ExecContext(ctx, "DELETE FROM "+table+" WHERE target IN "+in, keys...); err != nil {
				return fmt.Errorf("%s: %w", table, err)
			}
		}
	}
	return nil
}

// writeMX inserts the mx rows of the records that have a domain (the
// targets rows of cached records first, should their check's batch not
// be stored yet).
func (s *SQL) writeMX(ctx context.Context, tx *sql.Tx, cached, recs []Record) error {
	type key struct{ domain, target string }
	seen := map[key]int{}
	var rows []Record
	for _, r := range recs {
		if r.Domain == "" {
			continue
		}
		k := key{r.Domain, r.Target}
		if i, ok := seen[k]; ok {
			rows[i] = r
			continue
		}
		seen[k] = len(rows)
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b Record) int {
		return cmp.Or(strings.Compare(a.Domain, b.Domain), strings.Compare(a.Target, b.Target))
	})
	tseen := map[string]bool{}
	var targets []Record
	for _, r := range cached {
		if !tseen[r.Target] {
			tseen[r.Target] = true
			targets = append(targets, r)
		}
	}
	slices.SortFunc(targets, func(a, b Record) int { return strings.Compare(a.Target, b.Target) })
	for start := 0; start < len(targets); start += maxRows {
		part := targets[start:min(start+maxRows, len(targets))]
		var args []any
		for _, r := range part {
			args = append(args, r.Target, r.Protocol, r.Host, r.Port)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO targets (target, protocol, host, port) VALUES "+
			s.values(len(part), 4)+" ON CONFLICT (target) DO NOTHING", args...); err != nil {
			return fmt.Errorf("targets: %w", err)
		}
	}
	for start := 0; start < len(rows); start += maxRows {
		part := rows[start:min(start+maxRows, len(rows))]
		var args []any
		for _, r := range part {
			var pref any
			if r.MXPreference != nil {
				pref = *r.MXPreference
			}
			args = append(args, r.Domain, r.Target, pref, r.ImplicitMX)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO mx (domain, target, preference, implicit) VALUES "+s.values(len(part), 4)+
			" ON CONFLICT (domain, target) DO UPDATE SET preference = excluded.preference, implicit = excluded.implicit", args...); err != nil {
			return fmt.Errorf("mx: %w", err)
		}
	}
	return nil
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
		if _, err := tx.ExecContext(ctx, "INSERT INTO findings (target, id, severity) VALUES "+s.values(k, 3)+
			// another shard may write the same MX host at the same time
			" ON CONFLICT (target, id) DO UPDATE SET severity = excluded.severity",
			args[start*3:(start+k)*3]...); err != nil {
			return fmt.Errorf("findings: %w", err)
		}
	}
	return nil
}

// Stored returns the keys that have a result; a domain key
// (DomainKey) is stored when the domain has mx rows.
func (s *SQL) Stored(ctx context.Context, keys []string) (map[string]bool, error) {
	out := map[string]bool{}
	var targets, domains []string
	for _, k := range keys {
		if d, ok := strings.CutPrefix(k, mxPrefix); ok {
			domains = append(domains, d)
		} else {
			targets = append(targets, k)
		}
	}
	if err := s.stored(ctx, "SELECT target FROM results WHERE target IN ", targets, "", out); err != nil {
		return nil, err
	}
	if err := s.stored(ctx, "SELECT DISTINCT domain FROM mx WHERE domain IN ", domains, mxPrefix, out); err != nil {
		return nil, err
	}
	return out, nil
}

// stored runs query on chunks of keys and sets out[prefix+value] for
// every row.
func (s *SQL) stored(ctx context.Context, query string, keys []string, prefix string, out map[string]bool) error {
	for start := 0; start < len(keys); start += maxRows {
		part := keys[start:min(start+maxRows, len(keys))]
		args := make([]any, len(part))
		for i, k := range part {
			args[i] = k
		}
		rows, err := s.db.QueryContext(ctx, query+s.values(1, len(part)), args...)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k string
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return err
			}
			out[prefix+k] = true
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}
