package scan

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

func sampleRecords() []Record {
	r := &check.Report{Schema: check.Schema, Status: starttls.StatusSuccess, Grade: "B",
		Findings: []check.Finding{{ID: "cert-untrusted", Severity: check.High}, {ID: "tls-1.0", Severity: check.Medium}}}
	r.TLS.Negotiated = &check.Negotiated{Version: "TLS 1.3", CipherSuite: "TLS_AES_128_GCM_SHA256"}
	a := newRecord(starttls.Target{Protocol: starttls.SMTP, Host: "a.example", Port: 25}, "192.0.2.1", r)
	b := newRecord(starttls.Target{Protocol: starttls.IMAP, Host: "b.example", Port: 143}, "", nil)
	b.Status, b.Error, b.Grade = starttls.StatusConnectRefused, "connection refused", "F"
	return []Record{a, b}
}

// checkTables asserts the rows of sampleRecords in any SQL sink.
func checkTables(t *testing.T, db *sql.DB) {
	t.Helper()
	count := func(q string) int {
		var n int
		if err := db.QueryRow(q).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		return n
	}
	if n := count("SELECT count(*) FROM targets"); n != 2 {
		t.Errorf("%d targets", n)
	}
	if n := count("SELECT count(*) FROM results"); n != 2 {
		t.Errorf("%d results", n)
	}
	if n := count("SELECT count(*) FROM findings WHERE target = 'smtp://a.example:25'"); n != 2 {
		t.Errorf("%d findings", n)
	}
	var status, grade, version, suite, report string
	var port int
	if err := db.QueryRow(`SELECT r.status, r.grade, r.tls_version, r.cipher_suite, r.report, t.port
		FROM results r JOIN targets t USING (target) WHERE target = 'smtp://a.example:25'`).Scan(&status, &grade, &version, &suite, &report, &port); err != nil {
		t.Fatal(err)
	}
	var rep check.Report
	if status != "success" || grade != "B" || version != "TLS 1.3" || suite != "TLS_AES_128_GCM_SHA256" || port != 25 || json.Unmarshal([]byte(report), &rep) != nil || rep.Grade != "B" {
		t.Errorf("row: %s %s %s %s %d %.80s", status, grade, version, suite, port, report)
	}
}

func TestSQLiteSink(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scan.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	recs := sampleRecords()
	if err := s.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	// Written again (a rescan, and a duplicate within one batch): still one row each.
	again := append(sampleRecords(), sampleRecords()...)
	again[0].Findings = again[0].Findings[:1]
	again[2].Findings = again[2].Findings[:2]
	if err := s.Write(ctx, again); err != nil {
		t.Fatal(err)
	}
	checkTables(t, s.DB())
	got, err := s.Stored(ctx, []string{"smtp://a.example:25", "smtp://c.example:25"})
	if err != nil || !got["smtp://a.example:25"] || got["smtp://c.example:25"] {
		t.Errorf("Stored = %v, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Reopening keeps the schema and rows.
	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	checkTables(t, s.DB())
}

func TestJSONLSink(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "out.jsonl")
	s, err := OpenJSONL(path, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Write(ctx, sampleRecords()); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crash left half a record: resume ends that line and appends.
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"schema":"starttls.scan/v1","target":"smtp://cut`)
	f.Close()
	s, err = OpenJSONL(path, true)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Stored(ctx, []string{"smtp://a.example:25", "imap://b.example:143", "smtp://new.example:25"})
	if len(got) != 2 || got["smtp://new.example:25"] {
		t.Errorf("Stored = %v", got)
	}
	rec := sampleRecords()[1]
	rec.Target = "smtp://new.example:25"
	if err := s.Write(ctx, []Record{rec}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), b)
	}
	var r Record
	if err := json.Unmarshal([]byte(lines[0]), &r); err != nil || r.Schema != RecordSchema || len(r.Findings) != 2 || r.Findings[0].Severity != "high" || r.Report == nil {
		t.Errorf("first record %v: %s", err, lines[0])
	}
	if err := json.Unmarshal([]byte(lines[3]), &r); err != nil || r.Target != "smtp://new.example:25" {
		t.Errorf("last record %v: %s", err, lines[3])
	}
}

// --resume skips what the sink holds: a scan cut short and resumed
// stores every target exactly once, and the second run checks only the rest.
func TestResume(t *testing.T) {
	f := startFleet(t, 2, 4)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "scan.db")
	all := list(f)
	lines := strings.Split(strings.TrimSpace(all), "\n")
	first := strings.Join(lines[:len(lines)/2], "\n")
	o := Options{Concurrency: 8, Timeout: 500 * time.Millisecond}
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	sum1, err := Run(ctx, strings.NewReader(first), "", s, o)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	o.Resume = true
	checked := map[string]bool{}
	o.Check = func(ctx context.Context, tg starttls.Target, co check.Options) *check.Report {
		checked[Key(tg)] = true // one worker at a time below
		return check.Run(ctx, tg, co)
	}
	o.Concurrency = 1
	sum2, err := Run(ctx, strings.NewReader(all), "", s, o)
	if err != nil {
		t.Fatal(err)
	}
	if sum2.Resumed != sum1.Scanned || sum2.Scanned != int64(len(lines))-sum1.Scanned {
		t.Errorf("first %s\nsecond %s", sum1, sum2)
	}
	for _, l := range lines[:len(lines)/2] {
		if checked[l] {
			t.Errorf("%s checked again", l)
		}
	}
	var n, distinct int
	if err := s.DB().QueryRow("SELECT count(*), count(DISTINCT target) FROM results").Scan(&n, &distinct); err != nil {
		t.Fatal(err)
	}
	if n != len(lines) || distinct != n {
		t.Errorf("%d rows, %d distinct, want %d", n, distinct, len(lines))
	}
}
