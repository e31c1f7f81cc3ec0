package watch

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/mail"
	"github.com/starttls-go/starttls/watch/store"
)

// Store is where runs go; *store.SQL is the real one.
type Store interface {
	Save(ctx context.Context, r *store.Run) error
	Priors(ctx context.Context) (map[string]store.Prior, error)
}

// Metrics are watch's counters, for the dashboard and /metrics.
type Metrics struct {
	Runs        atomic.Int64 // runs finished
	Changes     atomic.Int64 // changes detected
	Saved       atomic.Int64 // runs stored
	DBErrors    atomic.Int64 // failed store attempts (each retry counts)
	Dropped     atomic.Int64 // runs lost because the buffer was full
	AlertsSent  atomic.Int64 // alert messages delivered
	AlertFails  atomic.Int64 // alert messages that could not be delivered
	Buffered    func() int   // runs waiting to be stored
	Subjects    atomic.Int64 // subjects scheduled
	ReloadFails atomic.Int64 // configuration reloads refused
}

// Watcher runs the configured checks on schedule.
type Watcher struct {
	// Check and Mail run one check; default check.Run and mail.Run
	// (tests replace them).
	Check func(ctx context.Context, t starttls.Target, o check.Options) *check.Report
	Mail  func(ctx context.Context, domain string, o mail.Options) *mail.Report
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Log receives operational messages; default slog.Default().
	Log *slog.Logger
	// RetryMax bounds the wait between store attempts. Default 10 s.
	RetryMax time.Duration

	Metrics Metrics

	st     Store
	cfg    atomic.Pointer[Config]
	roots  *x509.CertPool
	sched  *scheduler
	alerts *alerter
	queue  chan *store.Run

	mu     sync.Mutex
	priors map[string]store.Prior
}

// New makes a watcher of cfg storing into st. It loads the stored
// state so that change detection continues across restarts.
func New(ctx context.Context, cfg *Config, st Store) (*Watcher, error) {
	w := &Watcher{st: st, Check: check.Run, Mail: mail.Run, Now: time.Now, Log: slog.Default(), RetryMax: 10 * time.Second}
	if err := w.apply(cfg); err != nil {
		return nil, err
	}
	priors, err := st.Priors(ctx)
	if err != nil {
		return nil, err
	}
	w.priors = priors
	w.queue = make(chan *store.Run, cfg.Buffer)
	w.Metrics.Buffered = func() int { return len(w.queue) }
	w.alerts = newAlerter(w)
	w.sched = newScheduler(w, cfg)
	return w, nil
}

// apply makes cfg current after loading what it refers to.
func (w *Watcher) apply(cfg *Config) error {
	roots, err := loadRoots(cfg.CA)
	if err != nil {
		return err
	}
	if cfg.Resolver == "" && len(cfg.Domains) > 0 {
		r, err := mail.SystemResolver()
		if err != nil {
			return err
		}
		cfg.Resolver = r
	}
	w.roots = roots
	w.cfg.Store(cfg)
	return nil
}

func loadRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(b) {
		return nil, errors.New(file + ": no PEM certificate")
	}
	return pool, nil
}

// Config is the configuration in force.
func (w *Watcher) Config() *Config { return w.cfg.Load() }

// Reload switches to cfg. Subjects kept keep their schedule, new ones are
// spread over their first interval, removed ones stop. db, http and
// concurrency take effect only at the next start. On error the old
// configuration stays.
func (w *Watcher) Reload(cfg *Config) error {
	old := w.Config()
	if err := w.apply(cfg); err != nil {
		return err
	}
	w.sched.reload(cfg)
	// A removed subject leaves the dashboard; its history stays.
	if f, ok := w.st.(interface {
		Forget(ctx context.Context, subject string) error
	}); ok {
		keep := map[string]bool{}
		for _, k := range cfg.Subjects() {
			keep[k] = true
		}
		for _, k := range old.Subjects() {
			if !keep[k] {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				if err := f.Forget(ctx, k); err != nil {
					w.Log.Warn("watch: forget removed subject", "subject", k, "err", err)
				}
				cancel()
			}
		}
	}
	return nil
}

// Run schedules checks until ctx ends, then stores what is buffered (for
// at most a few seconds) and returns.
func (w *Watcher) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); w.writer(ctx) }()
	alertsDone := make(chan struct{})
	go func() { defer close(alertsDone); w.alerts.run(ctx) }()
	pruneDone := make(chan struct{})
	go func() { defer close(pruneDone); w.pruner(ctx) }()
	w.sched.run(ctx)
	<-pruneDone
	close(w.queue)
	<-done
	<-alertsDone
	return nil
}

// pruner deletes history older than Config.Retention, at start and
// every hour, when the store can.
func (w *Watcher) pruner(ctx context.Context) {
	p, ok := w.st.(interface {
		Prune(ctx context.Context, before time.Time) (int64, error)
	})
	if !ok {
		return
	}
	tick := time.NewTicker(time.Hour)
	defer tick.Stop()
	for {
		if r := w.Config().Retention.D(); r > 0 {
			n, err := p.Prune(ctx, w.Now().Add(-r))
			if err != nil && ctx.Err() == nil {
				w.Log.Warn("watch: pruning history", "err", err)
			} else if n > 0 {
				w.Log.Info("watch: pruned history", "rows", n, "older than", r)
			}
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return
		}
	}
}

// process runs one job and hands its result to the writer and alerter.
func (w *Watcher) process(ctx context.Context, j *item) {
	cfg := w.Config()
	start := time.Now()
	var snap store.Snapshot
	var report any
	timeout := cfg.Timeout.D()
	if j.kind == store.KindTarget {
		depth := j.depth
		if depth == "" {
			depth = cfg.Depth
		}
		r := w.Check(ctx, j.target, check.Options{Roots: w.roots, Timeout: timeout, Depth: depth, Concurrency: 2,
			LocalName: cfg.LocalName, Dial: w.sched.dial})
		snap, report = TargetSnapshot(j.key, r), r
	} else {
		if err := w.sched.waitToken(ctx); err != nil {
			return
		}
		r := w.Mail(ctx, j.domain, mail.Options{Resolver: &mail.Resolver{Addr: cfg.Resolver, TrustAD: cfg.TrustAD, Timeout: timeout},
			Roots: w.roots, SMTPPort: cfg.SMTPPort, HTTPSPort: cfg.HTTPSPort, Timeout: timeout, Concurrency: 2, LocalName: cfg.LocalName})
		snap, report = DomainSnapshot(j.key, r), r
	}
	if ctx.Err() != nil {
		return // cut short by shutdown: not a result
	}
	body, err := json.Marshal(report)
	if err != nil {
		w.Log.Error("watch: report", "subject", j.key, "err", err)
		return
	}
	w.Record(snap, body, float64(time.Since(start).Microseconds())/1000, j.routes)
}

// Record compares a finished run with the subject's previous one, queues
// it for storage and hands its changes to the alert routes.
func (w *Watcher) Record(snap store.Snapshot, report []byte, durMS float64, routes []string) []store.Change {
	cfg := w.Config()
	w.mu.Lock()
	p, ok := w.priors[snap.Subject]
	var prev *store.Snapshot
	if ok {
		prev = &p.Snapshot
	}
	d := Compare(prev, snap, p.State, DiffOptions{UnreachableAfter: cfg.UnreachableAfter, ExpiryDays: cfg.ExpiryDays, Now: w.Now()})
	w.priors[snap.Subject] = store.Prior{Snapshot: d.Baseline, State: d.State}
	w.mu.Unlock()
	w.Metrics.Runs.Add(1)
	w.Metrics.Changes.Add(int64(len(d.Changes)))
	r := &store.Run{Snapshot: snap, Baseline: d.Baseline, State: d.State, Changes: d.Changes, Appeared: d.Appeared,
		Disappeared: d.Disappeared, Report: report, DurationMS: durMS, First: !ok}
	select {
	case w.queue <- r:
	default:
		w.Metrics.Dropped.Add(1)
		w.Log.Warn("watch: store buffer full, result dropped", "subject", snap.Subject, "buffer", cap(w.queue))
	}
	if len(d.Changes) > 0 {
		w.alerts.add(routes, d.Changes)
	}
	return d.Changes
}

// writer stores queued runs in order. A failing store is retried with a
// growing pause while runs wait in the bounded queue; Record drops (and
// counts) what does not fit.
func (w *Watcher) writer(ctx context.Context) {
	for r := range w.queue {
		if !w.sched.has(r.Snapshot.Subject) {
			continue // removed by a reload while it ran or waited
		}
		pause := min(100*time.Millisecond, w.RetryMax)
		for {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			err := w.st.Save(sctx, r)
			cancel()
			if err == nil {
				w.Metrics.Saved.Add(1)
				break
			}
			w.Metrics.DBErrors.Add(1)
			w.Log.Warn("watch: store failed, retrying", "subject", r.Snapshot.Subject, "err", err, "in", pause)
			if ctx.Err() != nil {
				// Shutting down: one last chance per run, then drop.
				w.Metrics.Dropped.Add(1)
				break
			}
			select {
			case <-time.After(pause):
			case <-ctx.Done():
			}
			pause = min(2*pause, w.RetryMax)
		}
	}
}
