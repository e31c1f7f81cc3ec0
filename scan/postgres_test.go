package scan

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/peer"
)

// rows lists "target status grade findings" of every result, sorted.
func rows(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rs, err := db.Query(`SELECT r.target, r.status, r.grade, t.protocol,
		(SELECT count(*) FROM findings f WHERE f.target = r.target)
		FROM results r JOIN targets t ON t.target = r.target ORDER BY r.target`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []string
	for rs.Next() {
		var target, status, grade, proto string
		var n int
		if err := rs.Scan(&target, &status, &grade, &proto, &n); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s %s %s %s %d", target, status, grade, proto, n))
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// n shards written at once into one PostgreSQL hold exactly the rows of
// a single scan: no duplicates, no gaps. The schema is the SQLite one.
func TestPostgresShards(t *testing.T) {
	p := peer.StartPostgres(t, peer.PostgresOptions{})
	ctx := context.Background()
	p.CreateDatabases(t, "whole", "sharded")
	f := startFleet(t, 3, 8)
	in := list(f)
	// Plus some hundreds of closed ports, so that every shard has work.
	var more strings.Builder
	for i := range 300 {
		fmt.Fprintf(&more, "smtp://127.0.1.%d:%d\n", 2+i%200, 1+i%3)
	}
	in += more.String()
	o := Options{Concurrency: 16, Timeout: 600 * time.Millisecond, BatchSize: 37}

	whole, err := OpenPostgres(ctx, p.URL("whole"))
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	sumWhole, err := Run(ctx, strings.NewReader(in), "", whole, o)
	if err != nil {
		t.Fatal(err)
	}

	const n = 4
	var wg sync.WaitGroup
	sums := make([]Summary, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := OpenPostgres(ctx, p.URL("sharded")) // its own connections, as a pod would
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			so := o
			so.Shard = Shard{I: i, N: n}
			sums[i], errs[i] = Run(ctx, strings.NewReader(in), "", s, so)
		})
	}
	wg.Wait()
	var total int64
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("shard %d: %v", i, errs[i])
		}
		if sums[i].Scanned == 0 || sums[i].Scanned+sums[i].OtherShards != sumWhole.Read {
			t.Errorf("shard %d: %s", i, sums[i])
		}
		total += sums[i].Scanned
	}
	sharded, err := sql.Open("pgx", p.URL("sharded"))
	if err != nil {
		t.Fatal(err)
	}
	defer sharded.Close()
	a, b := rows(t, whole.DB()), rows(t, sharded)
	if total != sumWhole.Scanned || len(a) != int(sumWhole.Scanned) || strings.Join(a, "\n") != strings.Join(b, "\n") {
		t.Errorf("single scan %d rows, shards %d rows (scanned %d)", len(a), len(b), total)
		for i := 0; i < max(len(a), len(b)) && i < 20; i++ {
			var x, y string
			if i < len(a) {
				x = a[i]
			}
			if i < len(b) {
				y = b[i]
			}
			if x != y {
				t.Logf("%q != %q", x, y)
			}
		}
	}
	var dup int
	if err := sharded.QueryRow("SELECT count(*) - count(DISTINCT target) FROM results").Scan(&dup); err != nil || dup != 0 {
		t.Errorf("%d duplicates, %v", dup, err)
	}
	// --resume against PostgreSQL: a second pass checks nothing.
	again, err := Run(ctx, strings.NewReader(in), "", whole, Options{Resume: true, Concurrency: 4})
	if err != nil || again.Scanned != 0 || again.Resumed != sumWhole.Scanned {
		t.Errorf("resume: %s, %v", again, err)
	}
}

// An MX scan in 3 shards written at once into one PostgreSQL (shards
// write shared MX hosts concurrently) holds exactly the rows of a single
// scan; --resume by domain then checks nothing.
func TestPostgresMX(t *testing.T) {
	p := peer.StartPostgres(t, peer.PostgresOptions{})
	ctx := context.Background()
	p.CreateDatabases(t, "mxwhole", "mxsharded")
	e := startMXEnv(t)
	whole, err := OpenPostgres(ctx, p.URL("mxwhole"))
	if err != nil {
		t.Fatal(err)
	}
	defer whole.Close()
	o := e.options(nil)
	o.BatchSize = 3
	sum, err := Run(ctx, strings.NewReader(e.input), "", whole, o)
	if err != nil {
		t.Fatal(err)
	}
	checkMXTables(t, e, whole)

	const n = 3
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			s, err := OpenPostgres(ctx, p.URL("mxsharded"))
			if err != nil {
				errs[i] = err
				return
			}
			defer s.Close()
			so := o
			so.Shard = Shard{I: i, N: n}
			_, errs[i] = Run(ctx, strings.NewReader(e.input), "", s, so)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("shard %d: %v", i, err)
		}
	}
	sharded, err := OpenPostgres(ctx, p.URL("mxsharded"))
	if err != nil {
		t.Fatal(err)
	}
	defer sharded.Close()
	checkMXTables(t, e, sharded)
	again, err := Run(ctx, strings.NewReader(e.input), "", sharded, Options{MX: true, Resume: true, Resolver: e.dns.Resolver(), Concurrency: 4})
	if err != nil || again.Scanned != 0 || again.Resumed != sum.Domains {
		t.Errorf("resume: %s, %v", again, err)
	}
}
