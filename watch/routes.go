package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/starttls-go/starttls/watch/store"
)

// Routes sends alerts along the routes of a configuration without a
// running Watcher. `starttls tlsrpt` uses it, so that watch and the
// TLS-RPT collector share one implementation of webhook and mail
// sending, grouping and min_severity.
type Routes struct {
	a *alerter
}

// NewRoutes prepares the alert routes of cfg (loading its CA file for
// the mail routes); the rest of cfg is not used.
func NewRoutes(cfg *Config) (*Routes, error) {
	w := &Watcher{Now: time.Now, Log: slog.Default()}
	roots, err := loadRoots(cfg.CA)
	if err != nil {
		return nil, err
	}
	w.roots = roots
	w.cfg.Store(cfg)
	return &Routes{a: newAlerter(w)}, nil
}

// Send sends changes at once as one alert to each route in names (every
// route when names is empty), after the route's min_severity; a route
// left with no change gets nothing. The errors of all routes are joined.
func (r *Routes) Send(ctx context.Context, names []string, changes []store.Change) error {
	cfg := r.a.w.Config()
	known := map[string]bool{}
	for _, rt := range cfg.Alerts {
		known[rt.Name] = true
	}
	want := map[string]bool{}
	var errs []error
	for _, n := range names {
		if !known[n] {
			errs = append(errs, fmt.Errorf("no alert route named %q", n))
		}
		want[n] = true
	}
	for _, rt := range cfg.Alerts {
		if len(names) > 0 && !want[rt.Name] {
			continue
		}
		cs := rt.filter(changes)
		if len(cs) == 0 {
			continue
		}
		al := group(rt.Name, cs, r.a.w.Now())
		if err := r.a.send(ctx, rt, al); err != nil {
			r.a.w.Metrics.AlertFails.Add(1)
			errs = append(errs, fmt.Errorf("route %s: %w", rt.Name, err))
			continue
		}
		r.a.w.Metrics.AlertsSent.Add(1)
	}
	return errors.Join(errs...)
}

// Sent counts the alert messages delivered.
func (r *Routes) Sent() int64 { return r.a.w.Metrics.AlertsSent.Load() }

// Failed counts the messages that could not be delivered.
func (r *Routes) Failed() int64 { return r.a.w.Metrics.AlertFails.Load() }
