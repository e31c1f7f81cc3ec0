package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/scan/scantest"
	"github.com/starttls-go/starttls/watch"
	"github.com/starttls-go/starttls/watch/store"
)

func fetch(addr, path string) string {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitFor polls cond every 100 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// starttls watch against loopback servers of the scan fleet: two good
// ones and a closed port. It stores runs, serves the dashboard, alerts
// the webhook that the closed one is unreachable, keeps its
// configuration when a SIGHUP brings a broken file and takes a good one.
func TestWatchCLI(t *testing.T) {
	f, err := scantest.Start(t.TempDir(), map[scantest.Kind]int{scantest.Good: 2, scantest.Closed: 1}, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var mu sync.Mutex
	var alerts []watch.Alert
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a watch.Alert
		_ = json.NewDecoder(r.Body).Decode(&a)
		mu.Lock()
		alerts = append(alerts, a)
		mu.Unlock()
	}))
	defer hook.Close()
	dir := t.TempDir()
	conf := func(targets []scantest.Target) string {
		var b strings.Builder
		fmt.Fprintf(&b, "db: %s\ninterval: 1s\njitter: 0\ngroup_window: 1s\ndepth: session\ntimeout: 3s\nunreachable_after: 2\nca: %s\n",
			filepath.Join(dir, "w.db"), f.CAFile)
		fmt.Fprintf(&b, "alerts:\n  - name: hook\n    webhook: %s\ntargets:\n", hook.URL)
		for _, tg := range targets {
			fmt.Fprintf(&b, "  - url: %s\n", tg.URL)
		}
		return b.String()
	}
	path := filepath.Join(dir, "watch.yaml")
	if err := os.WriteFile(path, []byte(conf(f.Targets)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := loopback.UnusedAddr(t)
	var errb peer.Buffer
	rootCmd.SetErr(&errb)
	defer resetFlags()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() { done <- runContext(ctx, []string{"watch", "--config", path, "--http", addr}) }()
	defer func() {
		cancel()
		select {
		case code := <-done:
			if code != 0 {
				t.Errorf("watch exited %d: %s", code, errb.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("watch did not stop within 30 s")
		}
	}()
	var last string
	defer func() {
		if t.Failed() {
			t.Logf("last page: %s\nlog: %s", last, errb.String())
		}
	}()
	waitFor(t, 30*time.Second, "three graded rows", func() bool {
		body := fetch(addr, "/")
		last = body
		return strings.Count(body, `<tr class="subject"`) == 3 && strings.Count(body, `<td class="grade g-a">`) == 2 && strings.Count(body, `<td class="grade g-f">`) == 1
	})
	waitFor(t, 30*time.Second, "the unreachable alert", func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range alerts {
			for _, c := range a.Changes {
				if c.Kind == watch.Unreachable && strings.Contains(c.Message, "connect-refused") {
					return true
				}
			}
		}
		return false
	})
	// A broken file on SIGHUP: refused, counted, the old configuration runs on.
	if err := os.WriteFile(path, []byte("interval: 1s\ntargets:\n  - url: nope://x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the failed reload", func() bool {
		return strings.Contains(fetch(addr, "/metrics"), "watch_reload_failures_total 1\n")
	})
	if !strings.Contains(fetch(addr, "/metrics"), "watch_subjects 3\n") || !strings.Contains(errb.String(), "watch.yaml:3: targets[0].url") {
		t.Fatalf("after a failed reload: %s\n%s", fetch(addr, "/metrics"), errb.String())
	}
	// A good file: two targets from now on.
	if err := os.WriteFile(path, []byte(conf(f.Targets[:2])), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reload", func() bool { return strings.Contains(fetch(addr, "/metrics"), "watch_subjects 2\n") })
	if n := strings.Count(fetch(addr, "/"), `<tr class="subject"`); n != 2 {
		t.Fatalf("%d rows on the dashboard after removing a target", n)
	}
	if m := fetch(addr, "/metrics"); !strings.Contains(m, "watch_results_dropped_total 0\n") || strings.Contains(m, "watch_results_saved_total 0\n") {
		t.Fatalf("metrics: %s", m)
	}
}

// A malformed configuration is refused at start with file, line and field.
func TestWatchCLIBadConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(path, []byte("interval: 5m\ntargets:\n  - url: smtp://a.test\n    depth: deep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "", "watch", "--config", path)
	if code != exitUsage || !strings.Contains(stderr, "bad.yaml:4: targets[0].depth") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	code, stdout, _ := runCLI(t, "", "watch", "--config", path[:len(path)-8]+"/none.yaml")
	if code != exitUsage {
		t.Fatalf("missing file: exit %d %s", code, stdout)
	}
}

// A second watch on an SQLite file that one holds is refused, exit 3.
func TestWatchCLILocked(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "w.db")
	held, err := store.Open(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	path := filepath.Join(dir, "w.yaml")
	if err := os.WriteFile(path, []byte("db: "+db+"\ntargets:\n  - url: smtp://127.0.0.1:9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "", "watch", "--config", path)
	if code != exitConnect || !strings.Contains(stderr, "in use by another watch process") || !strings.Contains(stderr, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
