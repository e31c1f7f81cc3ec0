// Package web is watch's dashboard: server-rendered HTML (html/template,
// everything escaped), inline SVG plots, no JavaScript.
package web

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/mail"
	"github.com/starttls-go/starttls/tlsrpt"
	"github.com/starttls-go/starttls/watch/store"
)

//go:embed templates/*.html
var files embed.FS

var tmpl = template.Must(template.New("").Funcs(template.FuncMap{
	"gradeClass": gradeClass,
	"subjectURL": subjectURL,
	"ago":        ago,
	"when":       func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04") },
	"join":       strings.Join,
	"days":       days,
	"pct":        func(f float64) float64 { return f * 100 },
}).ParseFS(files, "templates/*.html"))

// Source is what the dashboard reads; *store.SQL is the real one.
type Source interface {
	Subjects(ctx context.Context) ([]store.SubjectRow, error)
	Subject(ctx context.Context, subject string) (store.SubjectRow, store.Snapshot, []byte, error)
	History(ctx context.Context, subject string, since, until time.Time, n int) ([]store.Bucket, error)
	FirstRun(ctx context.Context, subject string, since time.Time) (time.Time, error)
	Spans(ctx context.Context, subject string, since time.Time) ([]store.Span, error)
	Changes(ctx context.Context, subject string, limit int) ([]store.Change, error)
	DB() *sql.DB
	Dialect() string
}

// Metric is one counter or gauge shown on the dashboard and at /metrics.
type Metric struct {
	Name, Help string
	Gauge      bool
	Value      int64
}

// Server serves the dashboard.
type Server struct {
	Store Source
	// Metrics returns the current counters; nil shows none.
	Metrics func() []Metric
	// Now is the clock; default time.Now.
	Now func() time.Time
	Log *slog.Logger
}

// Handler routes the dashboard's pages.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("GET /subject", s.subject)
	mux.HandleFunc("GET /report.json", s.report)
	mux.HandleFunc("GET /metrics", s.metrics)
	return mux
}

func (s *Server) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	if s.Log != nil {
		s.Log.Error("watch dashboard", "err", err)
	}
	http.Error(w, "database error: "+err.Error(), http.StatusServiceUnavailable)
}

func subjectURL(key string) string { return "/subject?s=" + url.QueryEscape(key) }

func gradeClass(g string) string {
	switch g {
	case "A+", "A":
		return "g-a"
	case "B", "C":
		return "g-c"
	case "":
		return "g-none"
	}
	return "g-f"
}

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// days is the number of whole days from now to t, "" when t is zero.
func days(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return fmt.Sprint(int(t.Sub(now).Hours() / 24))
}

type indexPage struct {
	Now     time.Time
	N       int
	Rows    template.HTML
	Grades  []gradeCount
	Changes []store.Change
	Metrics []Metric
}

type gradeCount struct {
	Grade string
	N     int
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	subs, err := s.Store.Subjects(ctx)
	if err != nil {
		s.fail(w, err)
		return
	}
	changes, err := s.Store.Changes(ctx, "", 15)
	if err != nil {
		s.fail(w, err)
		return
	}
	now := s.now()
	p := indexPage{Now: now, N: len(subs), Rows: subjectRows(now, subs), Changes: changes}
	counts := map[string]int{}
	for _, sub := range subs {
		counts[sub.Grade]++
	}
	for g, n := range counts {
		p.Grades = append(p.Grades, gradeCount{g, n})
	}
	sort.Slice(p.Grades, func(i, j int) bool { return p.Grades[i].Grade < p.Grades[j].Grade })
	if s.Metrics != nil {
		p.Metrics = s.Metrics()
	}
	s.render(w, "index.html", p)
}

func (s *Server) render(w http.ResponseWriter, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if err := tmpl.ExecuteTemplate(w, name, data); err != nil && s.Log != nil {
		s.Log.Error("watch dashboard: render", "page", name, "err", err)
	}
}

type subjectPage struct {
	Now      time.Time
	Row      store.SubjectRow
	Snap     store.Snapshot
	Check    *check.Report
	Mail     *mail.Report
	Grades   template.HTML // the grade plot (SVG built from numbers and escaped text)
	Findings template.HTML // the findings timeline
	Changes  []store.Change
	TLSRPT   *tlsrpt.Summary
}

func (s *Server) subject(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key := r.URL.Query().Get("s")
	row, snap, rep, err := s.Store.Subject(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such target or domain", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	now := s.now()
	since := now.AddDate(-1, 0, 0)
	first, err := s.Store.FirstRun(ctx, key, since)
	if err != nil {
		s.fail(w, err)
		return
	}
	// The plots span the history there is, up to a year, at least a day.
	if first.After(since) {
		since = first
		if day := now.Add(-24 * time.Hour); day.Before(since) {
			since = day
		}
	}
	hist, err := s.Store.History(ctx, key, since, now.Add(time.Second), plotW-plotL-10)
	if err != nil {
		s.fail(w, err)
		return
	}
	spans, err := s.Store.Spans(ctx, key, since)
	if err != nil {
		s.fail(w, err)
		return
	}
	changes, err := s.Store.Changes(ctx, key, 50)
	if err != nil {
		s.fail(w, err)
		return
	}
	p := subjectPage{Now: now, Row: row, Snap: snap, Changes: changes,
		Grades: gradePlot(hist, since, now), Findings: findingPlot(spans, since, now)}
	if row.Kind == store.KindDomain {
		p.Mail = &mail.Report{}
		if err := json.Unmarshal(rep, p.Mail); err != nil {
			p.Mail = nil
		}
		if p.TLSRPT, err = tlsrptSummary(ctx, s.Store.DB(), s.Store.Dialect(), row.Name, now); err != nil && s.Log != nil {
			s.Log.Warn("watch dashboard: tlsrpt summary", "domain", row.Name, "err", err)
		}
	} else {
		p.Check = &check.Report{}
		if err := json.Unmarshal(rep, p.Check); err != nil {
			p.Check = nil
		}
	}
	s.render(w, "subject.html", p)
}

func (s *Server) report(w http.ResponseWriter, r *http.Request) {
	_, _, rep, err := s.Store.Subject(r.Context(), r.URL.Query().Get("s"))
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "no such target or domain", http.StatusNotFound)
		return
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = w.Write(rep)
}

// metrics writes the counters in the Prometheus text format.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	if s.Metrics == nil {
		return
	}
	for _, m := range s.Metrics() {
		kind := "counter"
		if m.Gauge {
			kind = "gauge"
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.Name, m.Help, m.Name, kind, m.Name, m.Value)
	}
}
