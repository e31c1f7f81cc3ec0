package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers "pgx"
	_ "modernc.org/sqlite"             // registers "sqlite" (pure Go)

	"github.com/starttls-go/starttls/internal/sqldb"
)

// dialect holds what differs between SQLite and PostgreSQL.
type dialect struct {
	name   string
	serial string // the type of an auto-numbered primary key
	dollar bool   // $1 placeholders, else ?
	lock   string // run first in the schema transaction
}

var (
	sqliteDialect   = dialect{name: "sqlite", serial: "INTEGER PRIMARY KEY"}
	postgresDialect = dialect{name: "postgres", serial: "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", dollar: true,
		lock: "SELECT pg_advisory_xact_lock(7307214)"}
)

// Schema returns the CREATE statements for a dialect ("sqlite" or
// "postgres"), as documented in docs/watch.md. Times are Unix
// milliseconds in both.
func Schema(name string) []string {
	d := sqliteDialect
	if name == "postgres" {
		d = postgresDialect
	}
	return d.schema()
}

func (d dialect) schema() []string {
	return []string{
		`CREATE TABLE IF NOT EXISTS watch_subjects (
	subject        TEXT PRIMARY KEY,
	kind           TEXT NOT NULL,
	name           TEXT NOT NULL,
	last_run       BIGINT NOT NULL,
	status         TEXT NOT NULL,
	grade          TEXT NOT NULL,
	worst          TEXT NOT NULL,
	error          TEXT NOT NULL,
	cert_not_after BIGINT NOT NULL,
	last_change_at BIGINT NOT NULL,
	last_change    TEXT NOT NULL,
	fails          INTEGER NOT NULL,
	runs           BIGINT NOT NULL,
	snapshot       TEXT NOT NULL,
	state          TEXT NOT NULL,
	report         TEXT NOT NULL
)`,
		`CREATE TABLE IF NOT EXISTS watch_runs (
	id          ` + d.serial + `,
	subject     TEXT NOT NULL,
	at          BIGINT NOT NULL,
	duration_ms DOUBLE PRECISION NOT NULL,
	status      TEXT NOT NULL,
	grade       TEXT NOT NULL,
	worst       TEXT NOT NULL,
	error       TEXT NOT NULL,
	report      TEXT
)`,
		// Covers the history plot: no table lookup per run.
		`CREATE INDEX IF NOT EXISTS watch_runs_subject_at ON watch_runs (subject, at, status, grade)`,
		`CREATE TABLE IF NOT EXISTS watch_findings (
	subject  TEXT NOT NULL,
	finding  TEXT NOT NULL,
	severity TEXT NOT NULL,
	title    TEXT NOT NULL,
	since    BIGINT NOT NULL,
	until    BIGINT
)`,
		`CREATE INDEX IF NOT EXISTS watch_findings_subject ON watch_findings (subject, since)`,
		`CREATE TABLE IF NOT EXISTS watch_changes (
	id       ` + d.serial + `,
	subject  TEXT NOT NULL,
	at       BIGINT NOT NULL,
	kind     TEXT NOT NULL,
	severity TEXT NOT NULL,
	message  TEXT NOT NULL,
	recovery INTEGER NOT NULL
)`,
		`CREATE INDEX IF NOT EXISTS watch_changes_subject_at ON watch_changes (subject, at)`,
		`CREATE INDEX IF NOT EXISTS watch_changes_at ON watch_changes (at)`,
	}
}

// SQL is the store on SQLite or PostgreSQL.
type SQL struct {
	db   *sql.DB
	d    dialect
	lock *fileLock // SQLite only
}

// Open opens a PostgreSQL database for a postgres:// or postgresql:// URL
// and an SQLite file otherwise. An SQLite file is held with a lock file
// (PATH.lock): a second watch on the same file gets ErrLocked.
func Open(ctx context.Context, dsn string) (*SQL, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, err
		}
		db.SetMaxOpenConns(4)
		return open(ctx, db, postgresDialect, nil)
	}
	if dsn == "" {
		return nil, errors.New("store: no database file name")
	}
	l, err := lockFile(dsn + ".lock")
	if err != nil {
		return nil, err
	}
	db, err := sql.Open("sqlite", "file:"+dsn+"?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)")
	if err != nil {
		l.release()
		return nil, err
	}
	db.SetMaxOpenConns(1) // one writer; reads take turns with it
	s, err := open(ctx, db, sqliteDialect, l)
	if err != nil {
		l.release()
	}
	return s, err
}

func open(ctx context.Context, db *sql.DB, d dialect, l *fileLock) (*SQL, error) {
	tx, err := db.BeginTx(ctx, nil)
	if err == nil {
		err = func() error {
			if d.lock != "" {
				if _, err := tx.ExecContext(ctx, d.lock); err != nil {
					return err
				}
			}
			for _, q := range d.schema() {
				if _, err := tx.ExecContext(ctx, q); err != nil {
					return fmt.Errorf("%w (in %.40q)", err, q)
				}
			}
			return tx.Commit()
		}()
		if err != nil {
			_ = tx.Rollback()
		}
	}
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store: %s schema: %w", d.name, err)
	}
	return &SQL{db: db, d: d, lock: l}, nil
}

// DB is the underlying database (tests and the tlsrpt summary read it).
func (s *SQL) DB() *sql.DB { return s.db }

// Dialect is "sqlite" or "postgres".
func (s *SQL) Dialect() string { return s.d.name }

// Close closes the database and releases the lock file.
func (s *SQL) Close() error {
	err := s.db.Close()
	s.lock.release()
	return err
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *SQL) q(query string) string {
	if !s.d.dollar {
		return query
	}
	return sqldb.Rebind(query)
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// Save stores one run in one transaction: the run row (with the report
// when something changed or on the first run; the subject's row always
// holds the latest report), the finding spans opened and closed, the
// changes, and the subject's latest state.
func (s *SQL) Save(ctx context.Context, r *Run) error {
	snap, err := json.Marshal(r.Baseline)
	if err != nil {
		return err
	}
	state, err := json.Marshal(r.State)
	if err != nil {
		return err
	}
	sn := &r.Snapshot
	at := ms(sn.At)
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // after Commit it is a no-op
	var report any
	if r.First || len(r.Changes) > 0 {
		report = string(r.Report)
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO watch_runs (subject, at, duration_ms, status, grade, worst, error, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`),
		sn.Subject, at, r.DurationMS, sn.Status, sn.Grade, sn.Worst, sn.Error, report); err != nil {
		return err
	}
	for _, f := range r.Appeared {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO watch_findings (subject, finding, severity, title, since) VALUES (?, ?, ?, ?, ?)`),
			sn.Subject, f.Key(), f.Severity, f.Title, at); err != nil {
			return err
		}
	}
	for _, f := range r.Disappeared {
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE watch_findings SET until = ? WHERE subject = ? AND finding = ? AND until IS NULL`),
			at, sn.Subject, f.Key()); err != nil {
			return err
		}
	}
	lastAt, last := int64(0), ""
	for _, c := range r.Changes {
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO watch_changes (subject, at, kind, severity, message, recovery) VALUES (?, ?, ?, ?, ?, ?)`),
			sn.Subject, ms(c.At), c.Kind, c.Severity, c.Message, b2i(c.Recovery)); err != nil {
			return err
		}
		lastAt, last = ms(c.At), c.Message
	}
	// The upsert keeps last_change when this run changed nothing.
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO watch_subjects (subject, kind, name, last_run, status, grade, worst, error, cert_not_after,
		last_change_at, last_change, fails, runs, snapshot, state, report) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?)
		ON CONFLICT (subject) DO UPDATE SET kind = excluded.kind, name = excluded.name, last_run = excluded.last_run,
		status = excluded.status, grade = excluded.grade, worst = excluded.worst, error = excluded.error,
		cert_not_after = excluded.cert_not_after,
		last_change_at = CASE WHEN excluded.last_change_at > 0 THEN excluded.last_change_at ELSE watch_subjects.last_change_at END,
		last_change = CASE WHEN excluded.last_change_at > 0 THEN excluded.last_change ELSE watch_subjects.last_change END,
		fails = excluded.fails, runs = watch_subjects.runs + 1, snapshot = excluded.snapshot, state = excluded.state,
		report = excluded.report`),
		sn.Subject, sn.Kind, sn.Name, at, sn.Status, sn.Grade, sn.Worst, sn.Error, ms(sn.EarliestExpiry()),
		lastAt, last, r.State.Fails, string(snap), string(state), string(r.Report)); err != nil {
		return err
	}
	return tx.Commit()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Forget deletes a subject's latest state (not its history): a subject
// removed from the configuration leaves the dashboard.
func (s *SQL) Forget(ctx context.Context, subject string) error {
	_, err := s.db.ExecContext(ctx, s.q(`DELETE FROM watch_subjects WHERE subject = ?`), subject)
	return err
}

// Prune deletes runs and changes older than before, and finding spans
// that ended before it, in batches so that the writer is never held up
// for long. It returns the number of rows deleted.
func (s *SQL) Prune(ctx context.Context, before time.Time) (int64, error) {
	var total int64
	for _, q := range []string{
		`DELETE FROM watch_runs WHERE id IN (SELECT id FROM watch_runs WHERE at < ? LIMIT 5000)`,
		`DELETE FROM watch_changes WHERE id IN (SELECT id FROM watch_changes WHERE at < ? LIMIT 5000)`,
		`DELETE FROM watch_findings WHERE until IS NOT NULL AND until < ?`,
	} {
		for range 100000 { // bounded: 500 million rows a call at most
			res, err := s.db.ExecContext(ctx, s.q(q), ms(before))
			if err != nil {
				return total, err
			}
			n, _ := res.RowsAffected()
			total += n
			if n < 5000 {
				break
			}
		}
	}
	return total, nil
}
