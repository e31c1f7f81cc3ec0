package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/watch/store"
)

// AlertSchema identifies the webhook's JSON body.
const AlertSchema = "starttls.watch.alert/v1"

// Alert is the body of one webhook POST (and the content of one mail):
// the changes of one grouping window for one route.
type Alert struct {
	Schema  string         `json:"schema"`
	Route   string         `json:"route"`
	SentAt  time.Time      `json:"sent_at"`
	Changes []store.Change `json:"changes"`
	// Repeats counts identical changes folded into one entry of Changes
	// (same subject, kind and message), by index.
	Repeats map[int]int `json:"repeats,omitempty"`
}

// alerter groups changes per route for GroupWindow, then sends each
// route one message.
type alerter struct {
	w       *Watcher
	client  *http.Client
	mu      sync.Mutex
	pending map[string][]store.Change
}

func newAlerter(w *Watcher) *alerter {
	return &alerter{w: w, client: &http.Client{Timeout: 15 * time.Second}, pending: map[string][]store.Change{}}
}

// add queues changes for routes (every route when routes is empty); a
// route drops changes below its min_severity, except recoveries, which
// end something it was told about.
func (a *alerter) add(routes []string, changes []store.Change) {
	cfg := a.w.Config()
	if len(cfg.Alerts) == 0 {
		return
	}
	want := map[string]bool{}
	for _, r := range routes {
		want[r] = true
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range cfg.Alerts {
		if len(routes) > 0 && !want[r.Name] {
			continue
		}
		a.pending[r.Name] = append(a.pending[r.Name], r.filter(changes)...)
	}
}

// filter keeps the changes at or above the route's min_severity and the
// recoveries.
func (r Route) filter(changes []store.Change) []store.Change {
	var out []store.Change
	for _, c := range changes {
		sev, _ := check.ParseSeverity(c.Severity)
		if c.Recovery || sev >= r.minSeverity {
			out = append(out, c)
		}
	}
	return out
}

// run flushes every GroupWindow and once more when ctx ends.
func (a *alerter) run(ctx context.Context) {
	for {
		t := time.NewTimer(a.w.Config().GroupWindow.D())
		select {
		case <-t.C:
			a.flush(ctx)
		case <-ctx.Done():
			t.Stop()
			a.flush(context.WithoutCancel(ctx))
			return
		}
	}
}

// Flush sends what is pending now (tests and shutdown).
func (w *Watcher) Flush(ctx context.Context) { w.alerts.flush(ctx) }

func (a *alerter) flush(ctx context.Context) {
	a.mu.Lock()
	pending := a.pending
	a.pending = map[string][]store.Change{}
	a.mu.Unlock()
	cfg := a.w.Config()
	for _, r := range cfg.Alerts {
		changes := pending[r.Name]
		if len(changes) == 0 {
			continue
		}
		al := group(r.Name, changes, a.w.Now())
		if err := a.send(ctx, r, al); err != nil {
			a.w.Metrics.AlertFails.Add(1)
			a.w.Log.Error("watch: alert not delivered", "route", r.Name, "changes", len(al.Changes), "err", err)
			continue
		}
		a.w.Metrics.AlertsSent.Add(1)
	}
}

// group folds repeats of the same subject, kind and message into one
// entry and orders the changes by severity, then subject.
func group(route string, changes []store.Change, now time.Time) Alert {
	al := Alert{Schema: AlertSchema, Route: route, SentAt: now.UTC(), Changes: []store.Change{}}
	idx := map[string]int{}
	for _, c := range changes {
		k := c.Subject + "\x00" + c.Kind + "\x00" + c.Message
		if i, ok := idx[k]; ok {
			if al.Repeats == nil {
				al.Repeats = map[int]int{}
			}
			al.Repeats[i]++
			continue
		}
		idx[k] = len(al.Changes)
		al.Changes = append(al.Changes, c)
	}
	order := make([]int, len(al.Changes))
	for i := range order {
		order[i] = i
	}
	rank := func(c store.Change) int { s, _ := check.ParseSeverity(c.Severity); return int(s) }
	sort.SliceStable(order, func(i, j int) bool {
		ci, cj := al.Changes[order[i]], al.Changes[order[j]]
		if rank(ci) != rank(cj) {
			return rank(ci) > rank(cj)
		}
		return ci.Subject < cj.Subject
	})
	sorted := make([]store.Change, len(order))
	var rep map[int]int
	for ni, oi := range order {
		sorted[ni] = al.Changes[oi]
		if n := al.Repeats[oi]; n > 0 {
			if rep == nil {
				rep = map[int]int{}
			}
			rep[ni] = n
		}
	}
	al.Changes, al.Repeats = sorted, rep
	return al
}

func (a *alerter) send(ctx context.Context, r Route, al Alert) error {
	var errs []string
	if r.Webhook != "" {
		if err := a.webhook(ctx, r.Webhook, al); err != nil {
			errs = append(errs, "webhook: "+err.Error())
		}
	}
	if r.Mail != nil {
		if err := a.mail(ctx, r.Mail, al); err != nil {
			errs = append(errs, "mail: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func (a *alerter) webhook(ctx context.Context, url string, al Alert) error {
	b, err := json.Marshal(al)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "starttls-watch")
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}

// Text renders an alert for a mail body.
func (al Alert) Text() string {
	var b strings.Builder
	fmt.Fprintf(&b, "starttls watch: %d change(s) for route %s at %s\n\n", len(al.Changes), al.Route, al.SentAt.Format(time.RFC3339))
	for i, c := range al.Changes {
		tag := strings.ToUpper(c.Severity)
		if c.Recovery {
			tag = "RECOVERED"
		}
		rep := ""
		if n := al.Repeats[i]; n > 0 {
			rep = fmt.Sprintf(" (x%d)", n+1)
		}
		fmt.Fprintf(&b, "[%s] %s%s\n    %s, %s\n", tag, clean(c.Message), rep, c.Kind, c.At.UTC().Format(time.RFC3339))
	}
	return b.String()
}
