package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"time"
)

// ErrNotFound is returned for a subject that has no stored run.
var ErrNotFound = errors.New("store: no such subject")

const subjectCols = `subject, kind, name, last_run, status, grade, worst, error, cert_not_after, last_change_at, last_change, fails, runs`

func scanSubject(sc interface{ Scan(...any) error }) (SubjectRow, error) {
	var r SubjectRow
	var last, cert, change int64
	err := sc.Scan(&r.Subject, &r.Kind, &r.Name, &last, &r.Status, &r.Grade, &r.Worst, &r.Error, &cert, &change, &r.LastChange, &r.Fails, &r.Runs)
	r.LastRun, r.CertNotAfter, r.LastChangeAt = fromMS(last), fromMS(cert), fromMS(change)
	return r, err
}

// Subjects lists every subject's latest state, ordered by name.
func (s *SQL) Subjects(ctx context.Context) ([]SubjectRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+subjectCols+` FROM watch_subjects ORDER BY kind, name`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []SubjectRow
	for rows.Next() {
		r, err := scanSubject(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Subject returns a subject's latest state, snapshot and report.
func (s *SQL) Subject(ctx context.Context, subject string) (SubjectRow, Snapshot, []byte, error) {
	var snap Snapshot
	var snapJSON, report string
	row := s.db.QueryRowContext(ctx, s.q(`SELECT `+subjectCols+`, snapshot, report FROM watch_subjects WHERE subject = ?`), subject)
	var r SubjectRow
	var last, cert, change int64
	err := row.Scan(&r.Subject, &r.Kind, &r.Name, &last, &r.Status, &r.Grade, &r.Worst, &r.Error, &cert, &change, &r.LastChange, &r.Fails, &r.Runs, &snapJSON, &report)
	if errors.Is(err, sql.ErrNoRows) {
		return r, snap, nil, ErrNotFound
	}
	if err != nil {
		return r, snap, nil, err
	}
	r.LastRun, r.CertNotAfter, r.LastChangeAt = fromMS(last), fromMS(cert), fromMS(change)
	if err := json.Unmarshal([]byte(snapJSON), &snap); err != nil {
		return r, snap, nil, err
	}
	return r, snap, []byte(report), nil
}

// Runs returns a subject's runs since a time, oldest first, at most limit.
func (s *SQL) Runs(ctx context.Context, subject string, since time.Time, limit int) ([]RunRow, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT at, status, grade, worst FROM watch_runs WHERE subject = ? AND at >= ? ORDER BY at DESC LIMIT ?`),
		subject, ms(since), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []RunRow
	for rows.Next() {
		var r RunRow
		var at int64
		if err := rows.Scan(&at, &r.Status, &r.Grade, &r.Worst); err != nil {
			return nil, err
		}
		r.At = fromMS(at)
		out = append(out, r)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, rows.Err()
}

// Spans returns a subject's finding spans that overlap [since, now].
func (s *SQL) Spans(ctx context.Context, subject string, since time.Time) ([]Span, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT finding, severity, title, since, until FROM watch_findings
		WHERE subject = ? AND (until IS NULL OR until >= ?) ORDER BY finding, since`), subject, ms(since))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Span
	for rows.Next() {
		var sp Span
		var from int64
		var until sql.NullInt64
		if err := rows.Scan(&sp.Finding, &sp.Severity, &sp.Title, &from, &until); err != nil {
			return nil, err
		}
		sp.Since, sp.Until = fromMS(from), fromMS(until.Int64)
		out = append(out, sp)
	}
	return out, rows.Err()
}

// Changes returns the latest changes, newest first: of one subject, or of
// all when subject is "".
func (s *SQL) Changes(ctx context.Context, subject string, limit int) ([]Change, error) {
	q, args := `SELECT subject, at, kind, severity, message, recovery FROM watch_changes ORDER BY at DESC, id DESC LIMIT ?`, []any{limit}
	if subject != "" {
		q = `SELECT subject, at, kind, severity, message, recovery FROM watch_changes WHERE subject = ? ORDER BY at DESC, id DESC LIMIT ?`
		args = []any{subject, limit}
	}
	rows, err := s.db.QueryContext(ctx, s.q(q), args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var c Change
		var at int64
		var rec int
		if err := rows.Scan(&c.Subject, &at, &c.Kind, &c.Severity, &c.Message, &rec); err != nil {
			return nil, err
		}
		c.At, c.Recovery = fromMS(at), rec != 0
		out = append(out, c)
	}
	return out, rows.Err()
}

// Priors loads every subject's last snapshot and state, for change
// detection to continue across restarts.
func (s *SQL) Priors(ctx context.Context) (map[string]Prior, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT subject, snapshot, state FROM watch_subjects`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]Prior{}
	for rows.Next() {
		var subject, snap, state string
		if err := rows.Scan(&subject, &snap, &state); err != nil {
			return nil, err
		}
		var p Prior
		if err := json.Unmarshal([]byte(snap), &p.Snapshot); err != nil {
			return nil, err
		}
		if err := json.Unmarshal([]byte(state), &p.State); err != nil {
			return nil, err
		}
		out[subject] = p
	}
	return out, rows.Err()
}

// Ping checks that the database answers.
func (s *SQL) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Bucket is the runs of one slice of a subject's history: the worst
// grade among those that answered and whether any did not.
type Bucket struct {
	At    time.Time // the first run in the slice
	Grade string    // "" when no run of the slice answered
	Down  bool
}

// unanswered are the statuses of runs that got no answer from the
// subject (check's and mail's); SQL literals, fixed here.
const unanswered = `'connect-refused','connect-timeout','timeout','closed','error','greeting-timeout','dns-error','unreachable'`

// History sums a subject's runs in [since, until) into at most n
// equal slices of time, in the database: a year of 5-minute runs is
// 105,000 rows, a plot is 800 pixels wide.
func (s *SQL) History(ctx context.Context, subject string, since, until time.Time, n int) ([]Bucket, error) {
	from, span := ms(since), max(1, ms(until)-ms(since))
	// A+ sorts after A as text; mapped to "0" it sorts first, so MAX is
	// the worst grade.
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT (at - ?) * ? / ? AS b, MIN(at),
		MAX(CASE WHEN status IN (`+unanswered+`) THEN '' WHEN grade = 'A+' THEN '0' ELSE grade END),
		MAX(CASE WHEN status IN (`+unanswered+`) THEN 1 ELSE 0 END)
		FROM watch_runs WHERE subject = ? AND at >= ? AND at < ? GROUP BY b ORDER BY b`),
		from, n, span, subject, from, ms(until))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Bucket
	for rows.Next() {
		var b Bucket
		var bucket, at int64
		var down int
		if err := rows.Scan(&bucket, &at, &b.Grade, &down); err != nil {
			return nil, err
		}
		if b.Grade == "0" {
			b.Grade = "A+"
		}
		b.At, b.Down = fromMS(at), down != 0
		out = append(out, b)
	}
	return out, rows.Err()
}

// FirstRun is the time of a subject's first run at or after since (zero
// when there is none).
func (s *SQL) FirstRun(ctx context.Context, subject string, since time.Time) (time.Time, error) {
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, s.q(`SELECT MIN(at) FROM watch_runs WHERE subject = ? AND at >= ?`), subject, ms(since)).Scan(&at)
	return fromMS(at.Int64), err
}
