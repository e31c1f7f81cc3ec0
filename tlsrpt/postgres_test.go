package tlsrpt

import (
	"context"
	"sync"
	"testing"

	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

// The same store scenario against a real PostgreSQL (over TLS, verified),
// plus concurrent deliveries of one report: exactly one is stored.
func TestStorePostgres(t *testing.T) {
	p := peer.StartPostgres(t, peer.PostgresOptions{})
	url := p.URL
	p.CreateDatabases(t, "tlsrpt_a", "tlsrpt_b")
	ctx := context.Background()
	s, err := Open(ctx, url("tlsrpt_a"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Dialect != Postgres {
		t.Fatalf("dialect %q", s.Dialect)
	}
	storeScenario(t, s)

	s2, err := Open(ctx, url("tlsrpt_b"))
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	c := &Collector{Store: s2}
	payload := tlsrpttest.Gzip(allTypesReport("google.com", "race-1").JSON())
	var wg sync.WaitGroup
	var mu sync.Mutex
	stored, dups := 0, 0
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := c.IngestPayload(ctx, payload, Source{Kind: "https"})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				t.Error(err)
			}
			if o.Stored {
				stored++
			}
			if o.Duplicate {
				dups++
			}
		}()
	}
	wg.Wait()
	n, err := s2.Count(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stored != 1 || dups != 7 || n.Reports != 1 || n.Failures != 11 {
		t.Errorf("stored %d dups %d counts %+v", stored, dups, n)
	}
	// Re-opening an existing schema is fine.
	if s3, err := Open(ctx, url("tlsrpt_b")); err != nil {
		t.Fatal(err)
	} else {
		s3.Close()
	}
}
