package store

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/peer"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// exercise stores three runs of a target (a finding appears, then goes)
// and reads everything back: the same behaviour is asked of both
// dialects.
func exercise(t *testing.T, st *SQL) {
	t.Helper()
	ctx := context.Background()
	key := "target:smtp://mx.test:25"
	snap := func(i int, grade string, fs ...Finding) Snapshot {
		return Snapshot{Subject: key, Kind: KindTarget, Name: "smtp://mx.test:25", At: t0.Add(time.Duration(i) * time.Hour),
			Status: "success", Reachable: true, Grade: grade, Findings: fs,
			Certs: []Cert{{SHA256: "aa", NotAfter: t0.AddDate(0, 2, 0)}}}
	}
	f := Finding{ID: "cert-untrusted", Severity: "high", Title: "untrusted 'quoted' \"title\""}
	runs := []*Run{
		{Snapshot: snap(0, "A"), First: true, Report: []byte(`{"n":0}`)},
		{Snapshot: snap(1, "C", f), Appeared: []Finding{f}, Report: []byte(`{"n":1}`),
			Changes: []Change{{Subject: key, At: t0.Add(time.Hour), Kind: "grade-dropped", Severity: "medium", Message: "A -> C"}}},
		{Snapshot: snap(2, "A"), Disappeared: []Finding{f}, Report: []byte(`{"n":2}`),
			Changes: []Change{{Subject: key, At: t0.Add(2 * time.Hour), Kind: "grade-raised", Severity: "info", Message: "C -> A", Recovery: true}}},
		{Snapshot: snap(3, "A"), Report: []byte(`{"n":3}`), State: State{Open: map[string]string{"x": "y"}}},
	}
	for _, r := range runs {
		r.Baseline = r.Snapshot
		if err := st.Save(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	subs, err := st.Subjects(ctx)
	if err != nil || len(subs) != 1 {
		t.Fatalf("subjects %v %v", subs, err)
	}
	s := subs[0]
	if s.Runs != 4 || s.Grade != "A" || s.LastChange != "C -> A" || !s.LastChangeAt.Equal(t0.Add(2*time.Hour)) ||
		!s.CertNotAfter.Equal(t0.AddDate(0, 2, 0)) || !s.LastRun.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("subject row %+v", s)
	}
	_, _, rep, err := st.Subject(ctx, key)
	if err != nil || string(rep) != `{"n":3}` {
		t.Fatalf("latest report %s %v", rep, err)
	}
	if _, _, _, err := st.Subject(ctx, "target:none"); err != ErrNotFound {
		t.Fatalf("unknown subject: %v", err)
	}
	rr, err := st.Runs(ctx, key, t0.Add(time.Hour), 10)
	if err != nil || len(rr) != 3 || rr[0].Grade != "C" || rr[2].Grade != "A" {
		t.Fatalf("runs %+v %v", rr, err)
	}
	var withReport int
	if err := st.DB().QueryRow(`SELECT count(*) FROM watch_runs WHERE report IS NOT NULL`).Scan(&withReport); err != nil || withReport != 3 {
		t.Fatalf("runs with a report: %d %v (the first and the changed ones)", withReport, err)
	}
	hist, err := st.History(ctx, key, t0, t0.Add(4*time.Hour), 4)
	if err != nil || len(hist) != 4 || hist[1].Grade != "C" || hist[3].Grade != "A" || !hist[2].At.Equal(t0.Add(2*time.Hour)) {
		t.Fatalf("history %+v %v", hist, err)
	}
	if hist, err = st.History(ctx, key, t0, t0.Add(4*time.Hour), 1); err != nil || len(hist) != 1 || hist[0].Grade != "C" || hist[0].Down {
		t.Fatalf("one bucket: %+v %v (want the worst grade)", hist, err)
	}
	if first, err := st.FirstRun(ctx, key, t0.Add(time.Minute)); err != nil || !first.Equal(t0.Add(time.Hour)) {
		t.Fatalf("first run %v %v", first, err)
	}
	sp, err := st.Spans(ctx, key, t0)
	if err != nil || len(sp) != 1 || !sp[0].Since.Equal(t0.Add(time.Hour)) || !sp[0].Until.Equal(t0.Add(2*time.Hour)) || sp[0].Title != f.Title {
		t.Fatalf("spans %+v %v", sp, err)
	}
	ch, err := st.Changes(ctx, "", 10)
	if err != nil || len(ch) != 2 || ch[0].Kind != "grade-raised" || !ch[0].Recovery || ch[1].Recovery {
		t.Fatalf("changes %+v %v", ch, err)
	}
	pr, err := st.Priors(ctx)
	if err != nil || pr[key].State.Open["x"] != "y" || pr[key].Snapshot.Grade != "A" {
		t.Fatalf("priors %+v %v", pr, err)
	}
	// Pruning at 1h30 drops the first two runs, the finding span that
	// ended at 2h stays, so does the change at 2h.
	if n, err := st.Prune(ctx, t0.Add(90*time.Minute)); err != nil || n != 3 {
		t.Fatalf("pruned %d rows: %v (want 2 runs and 1 change)", n, err)
	}
	if rr, _ := st.Runs(ctx, key, time.Time{}, 10); len(rr) != 2 {
		t.Fatalf("%d runs after pruning", len(rr))
	}
	if sp, _ := st.Spans(ctx, key, time.Time{}); len(sp) != 1 {
		t.Fatalf("%d spans after pruning", len(sp))
	}
	if n, err := st.Prune(ctx, t0.Add(150*time.Minute)); err != nil || n != 3 {
		t.Fatalf("second prune %d rows: %v (want 1 run, 1 change, 1 span)", n, err)
	}
	if err := st.Forget(ctx, key); err != nil {
		t.Fatal(err)
	}
	if subs, _ := st.Subjects(ctx); len(subs) != 0 {
		t.Fatalf("forgotten subject still listed")
	}
}

func TestSQLite(t *testing.T) {
	exerciseReopen(t, filepath.Join(t.TempDir(), "w.db"), "sqlite")
}

// The same against a real PostgreSQL (internal/peer: TLS required,
// verified), twice on one database to show the schema is idempotent.
func TestPostgres(t *testing.T) {
	p := peer.StartPostgres(t, peer.PostgresOptions{})
	exerciseReopen(t, p.URL("postgres"), "postgres")
}

// exerciseReopen runs exercise on the store at dsn, then opens it again:
// the schema is created once and the history kept (the one run left by
// pruning).
func exerciseReopen(t *testing.T, dsn, dialect string) {
	t.Helper()
	st, err := Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	if st.Dialect() != dialect {
		t.Fatalf("dialect %s", st.Dialect())
	}
	exercise(t, st)
	st.Close()
	st, err = Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n int
	if err := st.DB().QueryRow(`SELECT count(*) FROM watch_runs`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("%d runs after reopening: %v", n, err)
	}
}
