package watch

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/internal/certinfo"
	"github.com/starttls-go/starttls/watch/store"
)

// script makes a Check function whose n-th call for a target returns
// the n-th report of steps (the last one repeats).
type script struct {
	mu    sync.Mutex
	calls map[string]int
	steps []func(r *check.Report)
}

func report(t starttls.Target) *check.Report {
	return &check.Report{
		Schema: check.Schema, Target: t.String(), Protocol: string(t.Protocol), Host: t.Host, Port: t.Port,
		StartedAt: time.Now().UTC(), Status: starttls.StatusSuccess, Grade: "A",
		StartTLS: check.StartTLSInfo{Upgraded: true, Greeting: "220 mx.test ESMTP"},
		TLS:      check.TLSInfo{Versions: map[string]bool{"tls1.2": true, "tls1.3": true}},
		Certificate: check.CertificateInfo{Chain: []certinfo.Cert{{Subject: "CN=mx.test", SHA256: "aa",
			NotAfter: time.Now().Add(200 * 24 * time.Hour)}}},
		Findings: []check.Finding{},
	}
}

func (s *script) check(ctx context.Context, t starttls.Target, o check.Options) *check.Report {
	s.mu.Lock()
	n := s.calls[t.String()]
	s.calls[t.String()]++
	s.mu.Unlock()
	r := report(t)
	s.steps[min(n, len(s.steps)-1)](r)
	return r
}

func (s *script) count(t string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[t]
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// A watch over two targets on a 1 s interval stores one row per run,
// finding spans and changes, and POSTs the grouped changes to the
// webhook.
func TestWatchStoresAndAlerts(t *testing.T) {
	var posts []Alert
	var mu sync.Mutex
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("webhook body: %v", err)
		}
		mu.Lock()
		posts = append(posts, a)
		mu.Unlock()
	}))
	defer hook.Close()
	cfg, err := ParseConfig("t.yaml", []byte(`
interval: 1s
jitter: 0
group_window: 1h
targets:
  - url: smtp://127.0.0.1:2525
  - url: smtp://127.0.0.1:2526
alerts:
  - name: hook
    webhook: `+hook.URL+`
`))
	if err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(t.TempDir(), "w.db")
	st, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sc := &script{calls: map[string]int{}, steps: []func(*check.Report){
		func(r *check.Report) {},
		func(r *check.Report) {
			r.Grade = "C"
			r.Findings = []check.Finding{{ID: "cert-untrusted", Severity: check.High, Title: "<script>alert(1)</script>"}}
		},
		func(r *check.Report) {},
	}}
	w, err := New(context.Background(), cfg, st)
	if err != nil {
		t.Fatal(err)
	}
	w.Check, w.Log = sc.check, quiet()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for sc.count("smtp://127.0.0.1:2526") < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-done
	if n := sc.count("smtp://127.0.0.1:2526"); n < 4 {
		t.Fatalf("only %d runs in 20 s", n)
	}
	w.Flush(context.Background())
	var runs int
	if err := st.DB().QueryRow(`SELECT count(*) FROM watch_runs WHERE subject = 'target:smtp://127.0.0.1:2526'`).Scan(&runs); err != nil {
		t.Fatal(err)
	}
	if int64(runs) != int64(sc.count("smtp://127.0.0.1:2526")) {
		t.Fatalf("%d run rows for %d runs", runs, sc.count("smtp://127.0.0.1:2526"))
	}
	spans, err := st.Spans(context.Background(), "target:smtp://127.0.0.1:2526", time.Time{})
	if err != nil || len(spans) != 1 || spans[0].Finding != "cert-untrusted" || spans[0].Until.IsZero() {
		t.Fatalf("spans %+v %v", spans, err)
	}
	ch, err := st.Changes(context.Background(), "target:smtp://127.0.0.1:2526", 100)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, c := range ch {
		got[c.Kind]++
	}
	want := map[string]int{GradeDropped: 1, FindingAppeared: 1, GradeRaised: 1, FindingDisappeared: 1}
	for k, n := range want {
		if got[k] != n {
			t.Fatalf("changes %v, want %v", got, want)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) != 1 || posts[0].Schema != AlertSchema || len(posts[0].Changes) != 8 {
		t.Fatalf("webhook got %d posts: %+v", len(posts), posts)
	}
	if posts[0].Changes[0].Severity != "high" {
		t.Fatalf("alerts not ordered by severity: %+v", posts[0].Changes)
	}
	if w.Metrics.AlertsSent.Load() != 1 || w.Metrics.Dropped.Load() != 0 {
		t.Fatalf("metrics sent %d dropped %d", w.Metrics.AlertsSent.Load(), w.Metrics.Dropped.Load())
	}
}

// flaky fails every Save while down is set.
type flaky struct {
	down  atomic.Bool
	saved atomic.Int64
}

func (f *flaky) Save(ctx context.Context, r *store.Run) error {
	if f.down.Load() {
		return errors.New("connection refused")
	}
	f.saved.Add(1)
	return nil
}

func (f *flaky) Priors(ctx context.Context) (map[string]store.Prior, error) {
	return map[string]store.Prior{}, nil
}

// While the database is away, results wait in the bounded buffer and
// are retried; what does not fit is counted as dropped, and the rest is
// stored when the database returns.
func TestWatchDatabaseOutage(t *testing.T) {
	cfg, err := ParseConfig("t.yaml", []byte("buffer: 5\ntargets:\n  - url: smtp://127.0.0.1:2525\n"))
	if err != nil {
		t.Fatal(err)
	}
	f := &flaky{}
	f.down.Store(true)
	w, err := New(context.Background(), cfg, f)
	if err != nil {
		t.Fatal(err)
	}
	w.Log, w.RetryMax = quiet(), 20*time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.writer(ctx) }()
	tg, _ := starttls.ParseTarget("smtp://127.0.0.1:2525", "")
	rec := func() { w.Record(TargetSnapshot("target:smtp://127.0.0.1:2525", report(tg)), []byte("{}"), 1, nil) }
	rec()
	for w.Metrics.DBErrors.Load() == 0 { // the writer holds the first run
		time.Sleep(time.Millisecond)
	}
	for range 11 {
		rec()
	}
	time.Sleep(100 * time.Millisecond)
	if f.saved.Load() != 0 || w.Metrics.DBErrors.Load() < 2 {
		t.Fatalf("saved %d errors %d while down", f.saved.Load(), w.Metrics.DBErrors.Load())
	}
	// One run is being retried, five wait: six kept, six dropped.
	if d := w.Metrics.Dropped.Load(); d != 6 {
		t.Fatalf("dropped %d, want 6", d)
	}
	f.down.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for f.saved.Load() < 6 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if f.saved.Load() != 6 {
		t.Fatalf("saved %d after recovery, want 6", f.saved.Load())
	}
	cancel()
	close(w.queue)
	<-done
}

// Two watch processes on one SQLite file: the second is refused.
func TestStoreLock(t *testing.T) {
	db := filepath.Join(t.TempDir(), "w.db")
	a, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Open(context.Background(), db); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("second open: %v", err)
	}
	a.Close()
	b, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	b.Close()
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }

// A webhook that answers 500, or never answers, is a counted failure
// within the caller's deadline, not a hang.
func TestWebhookFailures(t *testing.T) {
	stall := make(chan struct{})
	defer close(stall)
	for _, c := range []struct {
		name string
		h    http.HandlerFunc
	}{
		{"500", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) }},
		{"stalled", func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leave
			select {
			case <-stall:
			case <-r.Context().Done():
			}
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			hook := httptest.NewServer(c.h)
			defer hook.Close()
			cfg, err := ParseConfig("t.yaml", []byte("targets:\n  - url: smtp://127.0.0.1:2525\nalerts:\n  - name: h\n    webhook: "+hook.URL+"\n"))
			if err != nil {
				t.Fatal(err)
			}
			w, err := New(context.Background(), cfg, &flaky{})
			if err != nil {
				t.Fatal(err)
			}
			w.Log = quiet()
			w.alerts.add(nil, []store.Change{{Subject: "target:smtp://127.0.0.1:2525", Kind: Unreachable, Severity: "high", Message: "down"}})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			start := time.Now()
			w.Flush(ctx)
			if w.Metrics.AlertFails.Load() != 1 || w.Metrics.AlertsSent.Load() != 0 || time.Since(start) > 5*time.Second {
				t.Fatalf("fails %d sent %d after %s", w.Metrics.AlertFails.Load(), w.Metrics.AlertsSent.Load(), time.Since(start))
			}
		})
	}
}
