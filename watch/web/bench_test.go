package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls/watch/store"
)

// The benchmark database: 10,000 targets, each with a year of daily runs
// (3.65 million rows), a finding that came and went and a few changes,
// plus one target with a year of 5-minute runs (105,120 rows) for the
// target page. Generated once per process.
var (
	benchOnce sync.Once
	benchDB   *store.SQL
	benchDir  string
	benchErr  error
)

const (
	benchTargets = 10000
	busyTarget   = "target:smtp://10.0.0.1:25"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchDB != nil {
		benchDB.Close()
		os.RemoveAll(benchDir)
	}
	os.Exit(code)
}

func benchStore(b *testing.B) *store.SQL {
	benchOnce.Do(func() {
		start := time.Now()
		benchDir, benchErr = os.MkdirTemp("", "watch-bench")
		if benchErr != nil {
			return
		}
		benchDB, benchErr = store.Open(context.Background(), filepath.Join(benchDir, "w.db"))
		if benchErr == nil {
			benchErr = generate(benchDB)
		}
		b.Logf("generated %d targets with a year of history in %s", benchTargets, time.Since(start).Round(time.Second))
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	return benchDB
}

func generate(st *store.SQL) error {
	db := st.DB()
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck
	grades := []string{"A+", "A", "A", "B", "C", "F"}
	year := fixNow.AddDate(-1, 0, 0)
	const per = 50 // rows per INSERT
	insertRuns := func(subject string, at []int64, grade string) error {
		for i := 0; i < len(at); i += per {
			j := min(i+per, len(at))
			var q strings.Builder
			args := make([]any, 0, 3*(j-i))
			q.WriteString("INSERT INTO watch_runs (subject, at, duration_ms, status, grade, worst, error) VALUES ")
			for k := i; k < j; k++ {
				if k > i {
					q.WriteString(",")
				}
				q.WriteString("(?, ?, 40, 'success', ?, '', '')")
				args = append(args, subject, at[k], grade)
			}
			if _, err := tx.Exec(q.String(), args...); err != nil {
				return err
			}
		}
		return nil
	}
	days := make([]int64, 365)
	for d := range days {
		days[d] = year.AddDate(0, 0, d).UnixMilli()
	}
	for i := range benchTargets {
		name := fmt.Sprintf("smtp://10.%d.%d.%d:25", i>>16&255, i>>8&255, i&255+1)
		key := "target:" + name
		g := grades[i%len(grades)]
		if err := insertRuns(key, days, g); err != nil {
			return err
		}
		snap, _ := json.Marshal(store.Snapshot{Subject: key, Kind: store.KindTarget, Name: name, At: fixNow, Reachable: true, Grade: g})
		rep := fmt.Sprintf(`{"schema":"starttls.report/v1","target":%q,"grade":%q,"findings":[]}`, name, g)
		if _, err := tx.Exec(`INSERT INTO watch_subjects VALUES (?, 'target', ?, ?, 'success', ?, ?, '', ?, ?, ?, 0, 365, ?, '{}', ?)`,
			key, name, fixNow.UnixMilli(), g, []string{"", "low", "medium", "high"}[i%4], fixNow.AddDate(0, 0, i%90).UnixMilli(),
			fixNow.AddDate(0, 0, -(i%200)).UnixMilli(), key+": grade dropped from A to "+g, string(snap), rep); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO watch_findings VALUES (?, 'tls-1.0', 'medium', 'TLS 1.0 accepted', ?, ?)`,
			key, days[i%300], days[i%300+30]); err != nil {
			return err
		}
		for c := range 3 {
			if _, err := tx.Exec(`INSERT INTO watch_changes (subject, at, kind, severity, message, recovery) VALUES (?, ?, 'grade-dropped', 'medium', ?, 0)`,
				key, days[(i+c*100)%365], key+": grade dropped"); err != nil {
				return err
			}
		}
	}
	var fiveMin []int64
	for t := year; t.Before(fixNow); t = t.Add(5 * time.Minute) {
		fiveMin = append(fiveMin, t.UnixMilli())
	}
	if err := insertRuns(busyTarget, fiveMin, "A"); err != nil {
		return err
	}
	snap, _ := json.Marshal(store.Snapshot{Subject: busyTarget, Kind: store.KindTarget, Name: "smtp://10.0.0.1:25", At: fixNow, Grade: "A"})
	if _, err := tx.Exec(`UPDATE watch_subjects SET snapshot = ? WHERE subject = ?`, string(snap), busyTarget); err != nil {
		return err
	}
	return tx.Commit()
}

func benchPage(b *testing.B, path string, want string) {
	h := (&Server{Store: benchStore(b), Now: func() time.Time { return fixNow }}).Handler()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if rec.Code != 200 || !strings.Contains(rec.Body.String(), want) {
			b.Fatalf("status %d, %d bytes, no %q", rec.Code, rec.Body.Len(), want)
		}
	}
}

// BenchmarkIndex10k renders the main page: 10,000 rows.
func BenchmarkIndex10k(b *testing.B) {
	benchPage(b, "/", "smtp://10.0.39.16:25")
}

// BenchmarkTarget5MinYear renders the page of a target with a year of
// 5-minute runs.
func BenchmarkTarget5MinYear(b *testing.B) {
	benchPage(b, "/subject?s="+url.QueryEscape(busyTarget), `id="grade-plot"`)
}
