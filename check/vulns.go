package check

import (
	"context"
	"sort"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Verdicts of the TLS vulnerability probes, in TLSInfo.Vulnerabilities. A
// verdict that is none of these starts with "n/a: " (the probe does not
// apply, and why) or "error: " (it could not complete).
const (
	Vulnerable    = "vulnerable"
	NotVulnerable = "not-vulnerable"
)

// vulnProbe is one entry of the vulnerability catalogue: it runs after the
// version and suite enumeration (so it can read c.r.TLS to decide whether it
// applies) and records its verdict with c.vuln.
type vulnProbe struct {
	id  string // the finding id it reports
	run func(ctx context.Context, c *run)
}

var (
	vulnMu     sync.Mutex
	vulnProbes []vulnProbe
)

// registerVuln adds a probe to the catalogue; each probe file registers its
// own in init, so that the catalogue grows without one shared switch.
func registerVuln(id string, f func(ctx context.Context, c *run)) {
	vulnMu.Lock()
	defer vulnMu.Unlock()
	if _, ok := catalogue[id]; !ok {
		panic("check: vulnerability probe for an id not in the catalogue: " + id)
	}
	vulnProbes = append(vulnProbes, vulnProbe{id, f})
	sort.Slice(vulnProbes, func(i, j int) bool { return vulnProbes[i].id < vulnProbes[j].id })
}

// vuln records a probe's verdict and how long it took.
func (c *run) vuln(id, verdict string, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r.TLS.Vulnerabilities == nil {
		c.r.TLS.Vulnerabilities = map[string]string{}
	}
	c.r.TLS.Vulnerabilities[id] = verdict
	c.r.Timings.ProbesMS["vuln:"+id] = ms(d)
}

// vulnerabilityProbes runs the catalogue concurrently, bounded by the
// check's connection budget.
func (c *run) vulnerabilityProbes(ctx context.Context) {
	vulnMu.Lock()
	probes := append([]vulnProbe(nil), vulnProbes...)
	vulnMu.Unlock()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, c.o.Concurrency/2))
	for _, p := range probes {
		g.Go(func() error {
			p.run(gctx, c)
			return nil
		})
	}
	_ = g.Wait()
}
