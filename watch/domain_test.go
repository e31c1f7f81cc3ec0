package watch

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/mail/mailtest"
	"github.com/starttls-go/starttls/watch/store"
)

// recorder is a store that keeps what it is given.
type recorder struct{ runs chan *store.Run }

func (r *recorder) Save(ctx context.Context, run *store.Run) error { r.runs <- run; return nil }
func (r *recorder) Priors(ctx context.Context) (map[string]store.Prior, error) {
	return map[string]store.Prior{}, nil
}

// Mail domains through the real mail check, in mailtest's world of
// signed zones, MX hosts and MTA-STS servers on loopback: the snapshot
// has the MX set, the MTA-STS id and mode and the DANE verdicts, and a
// TLSA record of another key is announced on the first run.
func TestWatchDomains(t *testing.T) {
	e := mailtest.Start(t)
	cfg, err := ParseConfig("d.yaml", []byte(fmt.Sprintf(`
interval: 1h
timeout: 5s
resolver: %s
ca: %s
smtp_port: %d
https_port: %d
domains:
  - domain: good.mail.test
  - domain: badtlsa.mail.test
`, e.Resolver, e.CAFile, e.SMTPPort, e.HTTPSPort)))
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{runs: make(chan *store.Run, 10)}
	w, err := New(context.Background(), cfg, rec)
	if err != nil {
		t.Fatal(err)
	}
	w.Log = quiet()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx) }()
	got := map[string]*store.Run{}
	timeout := time.After(90 * time.Second)
	for len(got) < 2 {
		select {
		case r := <-rec.runs:
			got[r.Snapshot.Name] = r
		case <-timeout:
			t.Fatalf("only %d domains checked in 90 s", len(got))
		}
	}
	cancel()
	<-done
	good, bad := got["good.mail.test"], got["badtlsa.mail.test"]
	if good == nil || bad == nil {
		t.Fatalf("runs %v", got)
	}
	g := good.Snapshot
	if g.Kind != store.KindDomain || strings.Join(g.MX, " ") != "mx1.good.mail.test mx2.good.mail.test" || g.STSMode != "enforce" || g.STSID == "" ||
		g.TLSA["mx1.good.mail.test"] != "pass" || g.TLSA["mx2.good.mail.test"] != "pass" || len(g.Certs) != 2 || !g.Reachable || len(good.Changes) != 0 {
		t.Fatalf("good domain snapshot %+v changes %+v", g, good.Changes)
	}
	b := bad.Snapshot
	if b.TLSA["mx1.badtlsa.mail.test"] != "fail" || len(bad.Changes) != 1 || bad.Changes[0].Kind != TLSAMismatch {
		t.Fatalf("badtlsa snapshot %+v changes %+v", b, bad.Changes)
	}
	if !strings.Contains(string(bad.Report), `"schema":"starttls.mail/v1"`) {
		t.Fatalf("report %.200s", bad.Report)
	}
}
