package tlsrpt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
	"github.com/starttls-go/starttls/watch"
)

// A webhook that stalls must not hold up the HTTPS POST (or SMTP DATA)
// that delivered the report: the report is stored and answered at once,
// the alert follows when the webhook answers, and Close waits for it.
func TestOutboxDoesNotHoldTheReport(t *testing.T) {
	release := make(chan struct{})
	got := make(chan string, 4)
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-time.After(20 * time.Second):
		}
		var al watch.Alert
		_ = json.NewDecoder(r.Body).Decode(&al)
		if len(al.Changes) > 0 {
			got <- al.Changes[0].Subject
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer stall.Close()
	cfg, err := watch.ParseConfig("w.yaml", fmt.Appendf(nil, "alerts:\n  - name: slow\n    webhook: %s\n", stall.URL))
	if err != nil {
		t.Fatal(err)
	}
	routes, err := watch.NewRoutes(cfg)
	if err != nil {
		t.Fatal(err)
	}
	box := NewOutbox(RoutesSender(routes, nil, nil), 4, 30*time.Second, nil)
	c := &Collector{Store: newSQLite(t), Alerts: &Alerter{FailureRate: 0.05, Send: box.Send}}
	srv := httptest.NewServer(HTTPHandler(c, Limits{}))
	defer srv.Close()

	r := tlsrpttest.Report{Org: "a.test", ReportID: "1", Start: day, Domain: "example.org", PolicyType: "sts", Successful: 1,
		Failures: []tlsrpttest.Failure{{ResultType: "sts-policy-fetch-error", Sessions: 30}}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL, strings.NewReader(string(r.JSON())))
	req.Header.Set("Content-Type", "application/tlsrpt+json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("the POST waited for the stalled webhook: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST: %s", resp.Status)
	}
	select {
	case s := <-got:
		t.Fatalf("alert %q sent before the webhook was released", s)
	default:
	}
	close(release)
	closeCtx, closeCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer closeCancel()
	if err := box.Close(closeCtx); err != nil {
		t.Fatalf("close: %v", err)
	}
	select {
	case s := <-got:
		if s != "tlsrpt:example.org" {
			t.Errorf("subject %q", s)
		}
	default:
		t.Fatal("Close returned before the queued alert was sent")
	}
}

func TestOutboxBounds(t *testing.T) {
	block := make(chan struct{})
	var order []string
	box := NewOutbox(func(_ context.Context, a []Alert) error {
		<-block
		order = append(order, a[0].ReportID)
		return errors.New("route down") // logged, not retried
	}, 2, time.Second, nil)
	one := func(id string) []Alert { return []Alert{{ReportID: id}} }
	// The worker takes the first batch and blocks in it; two more fill the queue.
	if err := box.Send(context.Background(), one("1")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(box.q) != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	for _, id := range []string{"2", "3"} {
		if err := box.Send(context.Background(), one(id)); err != nil {
			t.Fatalf("send %s: %v", id, err)
		}
	}
	if err := box.Send(context.Background(), one("4")); !errors.Is(err, ErrOutboxFull) {
		t.Fatalf("full queue: %v", err)
	}
	if err := box.Send(context.Background(), nil); err != nil {
		t.Fatalf("no alerts: %v", err)
	}
	// Close bounded by its context while the worker is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := box.Close(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("close while stuck: %v", err)
	}
	if err := box.Send(context.Background(), one("5")); !errors.Is(err, ErrOutboxClosed) {
		t.Fatalf("send after close: %v", err)
	}
	close(block)
	if err := box.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(order, ","); got != "1,2,3" {
		t.Errorf("sent %s, want 1,2,3 in order", got)
	}
}
