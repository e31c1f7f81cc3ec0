package scan

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/url"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/scan/scantest"
)

// mxEnv is a test zone of mail domains whose MX hosts are scantest
// servers on one port of several loopback addresses: mx-good.test
// (127.0.0.2, STARTTLS), mx-notls.test (127.0.0.3, no STARTTLS),
// the hosts of many.test (127.0.0.4, nothing listens).
type mxEnv struct {
	dns     *fakeDNS
	port    int
	domains []string // the domains of the input, lowercased
	input   string   // their lines, plus bad lines and comments
	want    []string // rowOf of every record of a scan of input
	roots   *x509.CertPool
}

func startMXEnv(t *testing.T) *mxEnv {
	t.Helper()
	// The certificate names the made-up hosts, so that mx-good verifies.
	fleet, err := scantest.StartNamed(t.TempDir(), nil, 3, "mx-good.test", "implicit.test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fleet.Close)
	// One port on three addresses: the MX port is the same for all hosts.
	port := 0
	for try := 0; try < 20 && port == 0; try++ {
		good, err := fleet.Add(scantest.Good, "127.0.0.2:0")
		if err != nil {
			t.Fatal(err)
		}
		u, _ := url.Parse(good.URL)
		p := u.Port()
		if _, err := fleet.Add(scantest.NoTLS, "127.0.0.3:"+p); err != nil {
			continue
		}
		if _, err := fleet.Add(scantest.Closed, "127.0.0.4:"+p); err != nil {
			continue
		}
		port, _ = strconv.Atoi(p)
	}
	if port == 0 {
		t.Fatal("no port free on 127.0.0.2-4")
	}
	zone := []string{
		"mx-good.test. 300 IN A 127.0.0.2",
		"mx-notls.test. 300 IN A 127.0.0.3",
		"shared1.test. 300 IN MX 10 mx-good.test.",
		"shared2.test. 300 IN MX 10 mx-good.test.",
		"two.test. 300 IN MX 20 mx-notls.test.",
		"two.test. 300 IN MX 10 mx-good.test.",
		"null.test. 300 IN MX 0 .",
		"nullmix.test. 300 IN MX 0 .",
		"nullmix.test. 300 IN MX 5 mx-notls.test.",
		"implicit.test. 300 IN A 127.0.0.2", // no MX: NODATA
		"dangling.test. 300 IN MX 10 mx-missing.test.",
	}
	e := &mxEnv{port: port, roots: caPool(t, fleet.CAFile)}
	P := strconv.Itoa(port)
	e.want = []string{
		"shared1.test smtp://mx-good.test:" + P + " 10 success",
		"shared2.test smtp://mx-good.test:" + P + " 10 success",
		"two.test smtp://mx-good.test:" + P + " 10 success",
		"two.test smtp://mx-notls.test:" + P + " 20 not-offered",
		"null.test mx:null.test - null-mx",
		"nullmix.test smtp://mx-notls.test:" + P + " 5 not-offered",
		"implicit.test smtp://implicit.test:" + P + " 0 success implicit",
		"dangling.test smtp://mx-missing.test:" + P + " 10 dns-error",
		"servfail.test mx:servfail.test - dns-error",
		"nx.test mx:nx.test - dns-error",
	}
	// many.test: 12 MX hosts at 4 preferences; the first 10 by
	// preference, then name, are checked (h07 and h11 are not).
	for i := range 12 {
		h := fmt.Sprintf("h%02d.many.test", i)
		zone = append(zone, fmt.Sprintf("many.test. 300 IN MX %d %s.", 10*(i%4), h), h+". 300 IN A 127.0.0.4")
		if i != 7 && i != 11 {
			e.want = append(e.want, fmt.Sprintf("many.test smtp://%s:%s %d connect-refused", h, P, 10*(i%4)))
		}
	}
	e.domains = []string{"shared1.test", "shared2.test", "two.test", "null.test", "nullmix.test", "implicit.test", "dangling.test", "servfail.test", "nx.test", "many.test"}
	// Generated domains sharing the two hosts, so that shards have work.
	for i := range 30 {
		d, mx, st := fmt.Sprintf("d%02d.test", i), "mx-good.test", "success"
		if i%2 == 1 {
			mx, st = "mx-notls.test", "not-offered"
		}
		zone = append(zone, fmt.Sprintf("%s. 300 IN MX 10 %s.", d, mx))
		e.domains = append(e.domains, d)
		e.want = append(e.want, fmt.Sprintf("%s smtp://%s:%s 10 %s", d, mx, P, st))
	}
	e.dns = startDNS(t, zone, "servfail.test")
	lines := slices.Clone(e.domains)
	lines[2] = "Two.Test." // case and the root dot are dropped
	lines = append(lines, "# a comment", "smtp://mx-good.test:25", "127.0.0.2", "mx-good.test:25")
	e.input = strings.Join(lines, "\n") + "\n"
	slices.Sort(e.want)
	return e
}

const mxBadLines = 3

func (e *mxEnv) options(c CheckFunc) Options {
	return Options{MX: true, MXPort: e.port, Resolver: e.dns.Resolver(), Concurrency: 8, Timeout: 2 * time.Second, Check: c, Roots: e.roots}
}

// rowOf is "domain target preference status [implicit]".
func rowOf(r Record) string {
	pref := "-"
	if r.MXPreference != nil {
		pref = strconv.Itoa(*r.MXPreference)
	}
	s := fmt.Sprintf("%s %s %s %s", r.Domain, r.Target, pref, r.Status)
	if r.ImplicitMX {
		s += " implicit"
	}
	return s
}

func rowsOf(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, rowOf(r))
	}
	slices.Sort(out)
	return out
}

// counter counts checks by host name (the check's ServerName).
type counter struct {
	mu sync.Mutex
	n  map[string]int
}

func newCounter() *counter { return &counter{n: map[string]int{}} }

func (c *counter) check(ctx context.Context, t starttls.Target, o check.Options) *check.Report {
	c.mu.Lock()
	c.n[o.ServerName]++
	c.mu.Unlock()
	return check.Run(ctx, t, o)
}

func diff(t *testing.T, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") == strings.Join(want, "\n") {
		return
	}
	t.Errorf("got %d rows, want %d", len(got), len(want))
	for _, g := range got {
		if !slices.Contains(want, g) {
			t.Errorf("  unexpected %s", g)
		}
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("  missing    %s", w)
		}
	}
}

// Every domain gets its MX hosts' records (preference order, cap of 10),
// null MX, NXDOMAIN, SERVFAIL, implicit MX and dangling MX hosts their
// outcomes, URL lines are bad lines, and each host is checked once
// however many domains share it.
func TestMXScan(t *testing.T) {
	e := startMXEnv(t)
	c := newCounter()
	sink := &memSink{}
	sum, err := Run(context.Background(), strings.NewReader(e.input), "", sink, e.options(c.check))
	if err != nil {
		t.Fatal(err)
	}
	diff(t, rowsOf(sink.recs), e.want)
	hosts := map[string]bool{}
	cached := 0
	for _, r := range sink.recs {
		if strings.HasPrefix(r.Target, mxPrefix) {
			if r.MXPreference != nil || r.Cached || r.Error == "" || r.Port != e.port || r.Host != r.Domain {
				t.Errorf("domain-level record %+v", r)
			}
			continue
		}
		if r.Cached {
			cached++
			if r.Attempts != 0 || r.Report != nil {
				t.Errorf("cached %s: %d attempts, report %v", r.Target, r.Attempts, r.Report != nil)
			}
		} else {
			if hosts[r.Target] {
				t.Errorf("%s checked twice", r.Target)
			}
			hosts[r.Target] = true
			if r.Status != StatusDNS && (r.Attempts != 1 || r.Report == nil) {
				t.Errorf("%s: %d attempts, report %v", r.Target, r.Attempts, r.Report != nil)
			}
		}
	}
	for h, n := range c.n {
		if n != 1 {
			t.Errorf("%s checked %d times", h, n)
		}
	}
	// 10 of many.test, mx-good, mx-notls, implicit.test; not h07, h11 or mx-missing (no address).
	if len(c.n) != 13 || c.n["h07.many.test"] != 0 || c.n["h11.many.test"] != 0 {
		t.Errorf("checked %v", c.n)
	}
	if sum.Read != int64(len(e.domains)) || sum.Domains != sum.Read || sum.BadLines != mxBadLines ||
		sum.Scanned != int64(len(e.want)) || sum.MXCached != int64(cached) || cached != len(e.want)-3-len(hosts) {
		t.Errorf("summary %+v; %d cached, %d hosts", sum, cached, len(hosts))
	}
	// The JSON form: preference 0 is kept, a domain-level record has none.
	for _, r := range sink.recs {
		b, _ := json.Marshal(r)
		switch {
		case r.Domain == "implicit.test" && !strings.Contains(string(b), `"domain":"implicit.test","mx_preference":0,"implicit_mx":true`),
			r.Domain == "null.test" && (strings.Contains(string(b), "mx_preference") || !strings.Contains(string(b), `"status":"null-mx"`)):
			t.Errorf("JSON %s", b)
		}
	}
	t.Logf("%s", sum)
}

// Domains asking at once for one MX host share one check (single flight).
func TestMXSingleFlight(t *testing.T) {
	var zone []string
	var in strings.Builder
	const n = 40
	for i := range n {
		fmt.Fprintf(&in, "s%02d.test\n", i)
		zone = append(zone, fmt.Sprintf("s%02d.test. 300 IN MX 10 big.test.", i))
	}
	zone = append(zone, "big.test. 300 IN A 127.0.0.2")
	d := startDNS(t, zone)
	var mu sync.Mutex
	checks := 0
	slow := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		mu.Lock()
		checks++
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
		return &check.Report{Status: starttls.StatusSuccess, Grade: "A"}
	}
	sink := &memSink{}
	sum, err := Run(context.Background(), strings.NewReader(in.String()), "", sink,
		Options{MX: true, Resolver: d.Resolver(), Concurrency: n, Timeout: 2 * time.Second, Check: slow})
	if err != nil {
		t.Fatal(err)
	}
	if checks != 1 || len(sink.recs) != n || sum.MXCached != n-1 || sum.Attempts != 1 {
		t.Errorf("%d checks, %d records, summary %s", checks, len(sink.recs), sum)
	}
	for _, r := range sink.recs {
		if r.Target != "smtp://big.test:25" || r.Status != starttls.StatusSuccess || r.Grade != "A" || *r.MXPreference != 10 {
			t.Errorf("record %s", rowOf(r))
		}
	}
}

// The union of the shards 0/3, 1/3 and 2/3 is the unsharded scan: each
// domain in exactly one shard, no duplicates.
func TestMXShards(t *testing.T) {
	e := startMXEnv(t)
	ctx := context.Background()
	var union []string
	var domains int64
	for i := range 3 {
		sink := &memSink{}
		o := e.options(nil)
		o.Shard = Shard{I: i, N: 3}
		sum, err := Run(ctx, strings.NewReader(e.input), "", sink, o)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Domains == 0 || sum.Domains+sum.OtherShards != int64(len(e.domains)) {
			t.Errorf("shard %d: %s", i, sum)
		}
		for _, r := range sink.recs {
			if ShardOf(DomainKey(r.Domain), 3) != i {
				t.Errorf("shard %d stored %s", i, rowOf(r))
			}
		}
		domains += sum.Domains
		union = append(union, rowsOf(sink.recs)...)
	}
	slices.Sort(union)
	if len(slices.Compact(slices.Clone(union))) != len(union) {
		t.Error("duplicate rows across shards")
	}
	diff(t, union, e.want)
	if domains != int64(len(e.domains)) {
		t.Errorf("%d domains in the shards, want %d", domains, len(e.domains))
	}
}

// --resume works by domain in JSON lines: a second run checks only the
// domains the first did not store, a third checks nothing.
func TestMXResumeJSONL(t *testing.T) {
	e := startMXEnv(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "mx.jsonl")
	half := strings.Join(e.domains[:len(e.domains)/2], "\n")
	run := func(in string, resume bool) (Summary, *counter) {
		t.Helper()
		s, err := OpenJSONL(path, resume)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		c := newCounter()
		o := e.options(c.check)
		o.Resume = resume
		sum, err := Run(ctx, strings.NewReader(in), "", s, o)
		if err != nil {
			t.Fatal(err)
		}
		return sum, c
	}
	first, _ := run(half, false)
	second, c := run(e.input, true)
	if second.Resumed != first.Domains || second.Domains != int64(len(e.domains))-first.Domains {
		t.Errorf("first %s\nsecond %s", first, second)
	}
	if c.n["h00.many.test"] != 0 && slices.Index(e.domains, "many.test") < len(e.domains)/2 {
		t.Errorf("many.test checked again: %v", c.n)
	}
	third, c := run(e.input, true)
	if third.Scanned != 0 || third.Resumed != int64(len(e.domains)) || len(c.n) != 0 {
		t.Errorf("third %s, checked %v", third, c.n)
	}
}

// The mx table: one row per (domain, MX host) and per domain-level
// outcome, joined to results; the documented queries; resume by domain;
// a rescan replaces rows.
func TestMXSQLite(t *testing.T) {
	e := startMXEnv(t)
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "mx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	sum, err := Run(ctx, strings.NewReader(e.input), "", s, e.options(nil))
	if err != nil {
		t.Fatal(err)
	}
	checkMXTables(t, e, s)
	// Resume: every domain is stored, nothing is checked.
	c := newCounter()
	o := e.options(c.check)
	o.Resume = true
	again, err := Run(ctx, strings.NewReader(e.input), "", s, o)
	if err != nil || again.Scanned != 0 || again.Resumed != sum.Domains || len(c.n) != 0 {
		t.Errorf("resume: %s, %v, checked %v", again, err, c.n)
	}
	// A rescan replaces: the same rows.
	if _, err := Run(ctx, strings.NewReader(e.input), "", s, e.options(nil)); err != nil {
		t.Fatal(err)
	}
	checkMXTables(t, e, s)
}

// checkMXTables asserts the rows of a scan of e in an SQL sink.
func checkMXTables(t *testing.T, e *mxEnv, s *SQL) {
	t.Helper()
	db := s.DB()
	rs, err := db.Query(`SELECT m.domain, m.target, m.preference, m.implicit, r.status
		FROM mx m JOIN results r USING (target) ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rs.Next() {
		var d, tg, st string
		var pref *int
		var implicit bool
		if err := rs.Scan(&d, &tg, &pref, &implicit, &st); err != nil {
			t.Fatal(err)
		}
		got = append(got, rowOf(Record{Domain: d, Target: tg, MXPreference: pref, ImplicitMX: implicit, Status: starttls.Status(st)}))
	}
	rs.Close()
	slices.Sort(got)
	diff(t, got, e.want)
	var results, targets, distinct int
	if err := db.QueryRow(`SELECT (SELECT count(*) FROM results), (SELECT count(*) FROM targets), (SELECT count(DISTINCT target) FROM mx)`).
		Scan(&results, &targets, &distinct); err != nil || results != distinct || targets != distinct {
		t.Errorf("results %d, targets %d, distinct mx targets %d, %v", results, targets, distinct, err)
	}
	query := func(q string) []string {
		t.Helper()
		rs, err := db.Query(q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var d string
			if err := rs.Scan(&d); err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	var upgrade, plain []string
	for i := range 30 {
		d := fmt.Sprintf("d%02d.test", i)
		if i%2 == 0 {
			upgrade = append(upgrade, d)
		} else {
			plain = append(plain, d)
		}
	}
	upgrade = append(upgrade, "implicit.test", "shared1.test", "shared2.test")
	plain = append(plain, "nullmix.test", "two.test")
	slices.Sort(upgrade)
	slices.Sort(plain)
	// The queries of docs/scan.md.
	diff(t, query(`SELECT m.domain FROM mx m JOIN results r USING (target)
		GROUP BY m.domain HAVING min(CASE WHEN r.status = 'success' THEN 1 ELSE 0 END) = 1 ORDER BY 1`), upgrade)
	diff(t, query(`SELECT DISTINCT m.domain FROM mx m JOIN results r USING (target)
		WHERE r.status = 'not-offered' ORDER BY 1`), plain)
	diff(t, query(`SELECT r.status || ' ' || count(*) FROM mx m JOIN results r USING (target)
		WHERE m.target LIKE 'mx:%' GROUP BY r.status ORDER BY 1`), []string{"dns-error 2", "null-mx 1"})
	top := query(`SELECT m.target || ' ' || r.status || ' ' || r.grade || ' ' || count(*) FROM mx m JOIN results r USING (target)
		GROUP BY m.target, r.status, r.grade ORDER BY count(*) DESC, 1 LIMIT 1`)
	if len(top) != 1 || !strings.HasPrefix(top[0], "smtp://mx-good.test:"+strconv.Itoa(e.port)+" success ") || !strings.HasSuffix(top[0], " 18") {
		t.Errorf("top host %v, want mx-good.test serving 18 domains", top)
	}
}

// A domain written again replaces its mx rows and domain-level result.
func TestSQLiteMXRescan(t *testing.T) {
	ctx := context.Background()
	s, err := OpenSQLite(ctx, filepath.Join(t.TempDir(), "mx.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pref := func(p int) *int { return &p }
	host := func(h string, p int, st starttls.Status) Record {
		r := newRecord(starttls.Target{Protocol: starttls.SMTP, Host: h, Port: 25}, "192.0.2.1", nil)
		r.Status, r.Domain, r.MXPreference = st, "d.test", pref(p)
		return r
	}
	level := Record{Schema: RecordSchema, Target: "mx:d.test", Protocol: "smtp", Host: "d.test", Port: 25, Status: StatusDNS,
		Error: "no such host", Grade: "F", Findings: []FindingRef{}, Domain: "d.test"}
	mxRows := func() string {
		rs, err := s.DB().Query(`SELECT m.target || ' ' || r.status FROM mx m JOIN results r USING (target) WHERE domain = 'd.test' ORDER BY 1`)
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var x string
			_ = rs.Scan(&x)
			out = append(out, x)
		}
		return strings.Join(out, ", ")
	}
	steps := []struct {
		recs []Record
		want string
	}{
		{[]Record{host("a.test", 10, starttls.StatusSuccess), host("b.test", 20, starttls.StatusNotOffered)},
			"smtp://a.test:25 success, smtp://b.test:25 not-offered"},
		{[]Record{level}, "mx:d.test dns-error"},
		{[]Record{host("b.test", 5, starttls.StatusSuccess)}, "smtp://b.test:25 success"},
	}
	for i, st := range steps {
		if err := s.Write(ctx, st.recs); err != nil {
			t.Fatal(err)
		}
		if got := mxRows(); got != st.want {
			t.Errorf("step %d: %q, want %q", i, got, st.want)
		}
	}
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM results WHERE target = 'mx:d.test'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("stale domain-level result: %d, %v", n, err)
	}
	got, err := s.Stored(ctx, []string{"mx:d.test", "mx:e.test", "smtp://a.test:25", "smtp://c.test:25"})
	if err != nil || len(got) != 2 || !got["mx:d.test"] || !got["smtp://a.test:25"] {
		t.Errorf("Stored = %v, %v", got, err)
	}
}

func TestParseDomain(t *testing.T) {
	for line, want := range map[string]string{
		"example.org": "example.org", "  Example.ORG. ": "example.org", "mail-1.example.org # c": "mail-1.example.org",
		"localhost": "localhost", "": "", "# only": "",
		"smtp://example.org": "!", "example.org:25": "!", "127.0.0.1": "!", "[::1]": "!", "::1": "!",
		"a b.example": "!", "a..example": "!", ".example": "!", "ex/ample": "!",
	} {
		d, ok, err := ParseDomain(line)
		got := d
		switch {
		case err != nil:
			got = "!"
		case !ok:
			got = ""
		}
		if got != want || (err != nil) == ok && err != nil {
			t.Errorf("ParseDomain(%q) = %q, %v, %v; want %q", line, d, ok, err, want)
		}
	}
	r := NewDomainReader(strings.NewReader("a.test\n\nsmtp://b.test\nB.Test.\n"))
	var keys []string
	for range 10 {
		l, err := r.Next()
		if err != nil {
			break
		}
		if l.Err != nil {
			keys = append(keys, "err")
			continue
		}
		keys = append(keys, l.Key())
	}
	if strings.Join(keys, " ") != "mx:a.test err mx:b.test" {
		t.Errorf("keys %v", keys)
	}
	if _, err := RunReader(context.Background(), NewReader(strings.NewReader(""), ""), &countSink{}, Options{MX: true}); err == nil {
		t.Error("MX with a target reader")
	}
}

// The host cache stays within its bound, keeping unfinished entries.
func TestHostCacheBounded(t *testing.T) {
	c := newHostCache(8)
	busy, _ := c.claim("busy")
	for i := range 100 {
		e, owner := c.claim(strconv.Itoa(i))
		if !owner {
			t.Fatalf("%d: not the owner", i)
		}
		close(e.done)
		if len(c.m) > 8 {
			t.Fatalf("%d entries, bound 8", len(c.m))
		}
	}
	if e, owner := c.claim("busy"); owner || e != busy {
		t.Error("an unfinished entry was evicted")
	}
	if e, owner := c.claim("99"); owner || e == nil {
		t.Error("the last entry was evicted")
	}
}
