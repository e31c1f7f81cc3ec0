package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/scan"
	"github.com/starttls-go/starttls/scan/scantest"
)

func scanFleet(t *testing.T, per int) *scantest.Fleet {
	t.Helper()
	n := map[scantest.Kind]int{}
	for _, k := range scantest.Kinds {
		n[k] = per
	}
	f, err := scantest.Start(t.TempDir(), n, 6)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func readRecords(t *testing.T, s string) map[string]scan.Record {
	t.Helper()
	out := map[string]scan.Record{}
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.More() {
		var r scan.Record
		if err := dec.Decode(&r); err != nil {
			t.Fatalf("record %d: %v", len(out), err)
		}
		if _, dup := out[r.Target]; dup {
			t.Errorf("%s twice", r.Target)
		}
		out[r.Target] = r
	}
	return out
}

// The whole fleet through --input -, JSON lines on stdout: each target
// its class; the summary on stderr and as JSON with --summary.
func TestScanCLIFleet(t *testing.T) {
	f := scanFleet(t, 2)
	list, err := f.WriteList(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(list)
	code, out, errs := runCLI(t, string(b)+"not a target\n", "scan", "--input", "-", "--out", "-", "--timeout", "700ms",
		"--retries", "0", "--concurrency", "32", "--ca", f.CAFile, "--summary", "--progress", "never")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	summary := lines[len(lines)-1]
	recs := readRecords(t, strings.Join(lines[:len(lines)-1], "\n"))
	for url, want := range f.WantOf() {
		if r, ok := recs[url]; !ok || r.Status != want {
			t.Errorf("%s: %q (%s), want %s", url, r.Status, r.Error, want)
		}
	}
	var s struct {
		Schema   string           `json:"schema"`
		Scanned  int              `json:"scanned"`
		BadLines int              `json:"bad_lines"`
		Statuses map[string]int   `json:"statuses"`
		Rate     float64          `json:"targets_per_s"`
		Extra    map[string]int64 `json:"-"`
	}
	if err := json.Unmarshal([]byte(summary), &s); err != nil || s.Scanned != len(f.Targets) || s.BadLines != 1 || s.Statuses["success"] != 2 {
		t.Errorf("summary %v: %s", err, summary)
	}
	if !strings.Contains(errs, "skipped line") || !strings.Contains(errs, fmt.Sprintf("scanned %d targets", len(f.Targets))) {
		t.Errorf("stderr: %s", errs)
	}
}

// SQLite is the default sink; --resume skips what it holds; arguments
// and --input combine.
func TestScanCLISQLiteResume(t *testing.T) {
	f := scanFleet(t, 1)
	dir := t.TempDir()
	db := filepath.Join(dir, "scan.db")
	first := []string{f.Targets[0].URL, f.Targets[1].URL}
	code, _, errs := runCLI(t, "", append([]string{"scan", "--out", "sqlite:" + db, "--timeout", "500ms", "--progress", "never"}, first...)...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	list, _ := f.WriteList(dir)
	code, _, errs = runCLI(t, "", "scan", "--input", list, "--out", "sqlite:"+db, "--resume", "--timeout", "500ms", "--progress", "never")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, fmt.Sprintf("scanned %d targets", len(f.Targets)-2)) || !strings.Contains(errs, "resumed 2") {
		t.Errorf("stderr: %s", errs)
	}
	s, err := scan.OpenSQLite(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n, d int
	if err := s.DB().QueryRow("SELECT count(*), count(DISTINCT target) FROM results").Scan(&n, &d); err != nil || n != len(f.Targets) || d != n {
		t.Errorf("%d rows, %d distinct, %v", n, d, err)
	}
}

func TestScanCLIUsage(t *testing.T) {
	for _, args := range [][]string{
		{"scan"},
		{"scan", "--shard", "4/4", "smtp://127.0.0.1:1"},
		{"scan", "--depth", "deep", "smtp://127.0.0.1:1"},
		{"scan", "--out", "mysql://x", "smtp://127.0.0.1:1"},
		{"scan", "127.0.0.1:1"}, // no protocol
		{"scan", "--out", "-", "--resume", "smtp://127.0.0.1:1"},
		{"scan", "--input", "/nonexistent/list"},
		{"scan", "--source-ip", "127.0.0.0/33", "smtp://127.0.0.1:1"}, // not a range
		{"scan", "--concurrency", "-1", "smtp://127.0.0.1:1"},         // 0 is the automatic default
	} {
		if code, _, _ := runCLI(t, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

// --mx: usage errors, and lines that are not domains are bad lines. (The
// MX scan itself needs DNS, which the CLI takes from the system: it is
// tested in package scan with a resolver on loopback.)
func TestScanCLIMX(t *testing.T) {
	for _, args := range [][]string{
		{"scan", "--mx", "smtp://mx.example.org:25"},
		{"scan", "--mx", "mx.example.org:25"},
		{"scan", "--mx", "127.0.0.1"},
		{"scan", "--mx", "--proto", "imap", "example.org"},
		{"scan", "--mx", "--mx-port", "0", "example.org"},
		{"scan", "--mx", "--mx-port", "65536", "example.org"},
	} {
		if code, _, errs := runCLI(t, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errs)
		}
	}
	// No domain in the input: nothing is looked up.
	code, out, errs := runCLI(t, "smtp://mx.example.org:25\n127.0.0.1\n# c\nmx.example.org:25\n", "scan", "--mx", "--input", "-",
		"--out", "jsonl:"+filepath.Join(t.TempDir(), "o.jsonl"), "--summary", "--progress", "never")
	var s scan.Summary
	if code != 0 || json.Unmarshal([]byte(out), &s) != nil || s.BadLines != 3 || s.Read != 0 || s.Scanned != 0 {
		t.Errorf("exit %d, summary %s, stderr %s", code, out, errs)
	}
	if !strings.Contains(errs, "bad domain") {
		t.Errorf("stderr: %s", errs)
	}
}

// A large input from stdin: memory stays bounded by the concurrency
// (the engine's own count of targets held), whatever the input's length.
func TestScanCLIStreamsInput(t *testing.T) {
	var in strings.Builder
	const n = 5000
	for i := range n {
		fmt.Fprintf(&in, "127.0.%d.%d:%d\n", 1+i/250%250, 2+i%250, 1+i%5)
	}
	code, out, errs := runCLI(t, in.String(), "scan", "--proto", "smtp", "--input", "-", "--out", "jsonl:"+filepath.Join(t.TempDir(), "o.jsonl"),
		"--concurrency", "20", "--per-24", "0", "--summary", "--progress", "never")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var s scan.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Scanned != n || s.MaxHeld > 3*20+256+256+1 || s.MaxInFlight > 20 {
		t.Errorf("scanned %d, held at most %d, in flight at most %d", s.Scanned, s.MaxHeld, s.MaxInFlight)
	}
}

// TestScanHelperProcess is not a test: it runs the CLI in a child process
// for TestScanCLIShardProcesses.
func TestScanHelperProcess(t *testing.T) {
	args := os.Getenv("STARTTLS_SCAN_HELPER")
	if args == "" {
		return // not a helper process: nothing to do (no skip: CI counts skips)
	}
	os.Exit(run(strings.Split(args, "\x1f")))
}

// n processes with --shard i/n into one PostgreSQL store exactly the rows
// of one process without --shard: no duplicates, no gaps.
func TestScanCLIShardProcesses(t *testing.T) {
	p := peer.StartPostgres(t, peer.PostgresOptions{})
	url := p.URL
	p.CreateDatabases(t, "whole", "sharded")
	f := scanFleet(t, 2)
	dir := t.TempDir()
	list, _ := f.WriteList(dir)
	b, _ := os.ReadFile(list)
	for i := range 200 { // closed ports: every shard gets work
		b = fmt.Appendf(b, "smtp://127.0.2.%d:%d\n", 2+i%200, 1+i/200)
	}
	os.WriteFile(list, b, 0o644)
	common := []string{"scan", "--input", list, "--timeout", "700ms", "--retries", "0", "--ca", f.CAFile, "--progress", "never"}

	if code, _, errs := runCLI(t, "", append(common, "--out", url("whole"))...); code != 0 {
		t.Fatalf("single: exit %d: %s", code, errs)
	}
	const n = 3
	var wg sync.WaitGroup
	outs := make([]string, n)
	codes := make([]error, n)
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestScanHelperProcess$")
			args := append(append([]string{}, common...), "--out", url("sharded"), "--shard", fmt.Sprintf("%d/%d", i, n))
			cmd.Env = append(os.Environ(), "STARTTLS_SCAN_HELPER="+strings.Join(args, "\x1f"))
			o, err := cmd.CombinedOutput()
			outs[i], codes[i] = string(o), err
		})
	}
	wg.Wait()
	for i := range n {
		if codes[i] != nil {
			t.Fatalf("shard %d: %v\n%s", i, codes[i], outs[i])
		}
	}
	get := func(db string) []string {
		c, err := sql.Open("pgx", url(db))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rs, err := c.Query("SELECT target, status, grade, (SELECT count(*) FROM findings f WHERE f.target = r.target) FROM results r ORDER BY target")
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var a, b, c string
			var k int
			if err := rs.Scan(&a, &b, &c, &k); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %s %d", a, b, c, k))
		}
		return out
	}
	whole, sharded := get("whole"), get("sharded")
	want := len(f.Targets) + 200
	if len(whole) != want || strings.Join(whole, "\n") != strings.Join(sharded, "\n") {
		t.Errorf("single process %d rows, %d shards %d rows, want %d each and equal", len(whole), n, len(sharded), want)
	}
	for _, o := range outs {
		if !strings.Contains(o, "other shards") {
			t.Errorf("shard output: %s", o)
		}
	}
}
