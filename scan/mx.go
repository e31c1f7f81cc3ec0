package scan

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/starttls-go/starttls"
)

// MaxMXHosts bounds the MX hosts checked per domain: the first ten by
// preference, then name. Real domains rarely publish more; a domain that
// publishes hundreds cannot make one worker check them all.
const MaxMXHosts = 10

// mxHost is one mail host of a domain.
type mxHost struct {
	host     string
	pref     int
	implicit bool
}

// lookupMX returns the domain's mail hosts (null MX entries dropped,
// sorted, deduplicated, capped), or the domain-level status and error.
func (e *engine) lookupMX(ctx context.Context, domain string) ([]mxHost, starttls.Status, error) {
	lctx, cancel := context.WithTimeout(ctx, e.o.Timeout)
	mxs, err := e.dns.r.LookupMX(lctx, domain)
	cancel()
	// With some records that are not host names, Go returns the others
	// and an error: the valid ones are used.
	var hosts []mxHost
	null := false
	for _, mx := range mxs {
		h := strings.ToLower(strings.TrimSuffix(mx.Host, "."))
		if h == "" { // "." : RFC 7505 null MX
			null = true
			continue
		}
		if validHost(h) {
			hosts = append(hosts, mxHost{host: h, pref: int(mx.Pref)})
		}
	}
	slices.SortFunc(hosts, func(a, b mxHost) int { return cmp.Or(cmp.Compare(a.pref, b.pref), strings.Compare(a.host, b.host)) })
	hosts = slices.CompactFunc(hosts, func(a, b mxHost) bool { return a.host == b.host }) // a host listed twice: its best preference
	switch {
	case len(hosts) > 0: // a null MX among other records is ignored
		return hosts[:min(len(hosts), MaxMXHosts)], "", nil
	case null:
		return nil, StatusNullMX, errors.New("null MX (RFC 7505): the domain accepts no mail")
	}
	var de *net.DNSError
	if err == nil || errors.As(err, &de) && de.IsNotFound {
		// No MX records. Go reports NXDOMAIN and NODATA alike (not
		// found); the domain's own address tells them apart: with one,
		// the domain is its own mail host (RFC 5321 section 5.1).
		_, aerr := e.dns.lookup(ctx, domain)
		if aerr == nil {
			return []mxHost{{host: domain, pref: 0, implicit: true}}, "", nil
		}
		if err == nil {
			err = fmt.Errorf("no MX records, and no address: %w", aerr)
		}
	}
	if ctx.Err() != nil {
		return nil, starttls.StatusTimeout, fmt.Errorf("mx %s: %w", domain, err)
	}
	return nil, StatusDNS, fmt.Errorf("mx %s: %w", domain, err)
}

// processDomain checks the MX hosts of one domain, one after another,
// and returns one record per host, or one domain-level record (target
// DomainKey(domain)) when there is no host to check.
func (e *engine) processDomain(ctx context.Context, domain string) []Record {
	start := time.Now()
	hosts, status, err := e.lookupMX(ctx, domain)
	if err != nil {
		rec := Record{Schema: RecordSchema, Target: DomainKey(domain), Protocol: string(starttls.SMTP), Host: domain, Port: e.o.MXPort,
			Status: status, Error: err.Error(), Findings: []FindingRef{}, ScannedAt: time.Now().UTC(), Domain: domain}
		if status != StatusNullMX {
			rec.Grade = "F"
		}
		rec.Timings.TotalMS = ms(time.Since(start))
		return []Record{rec}
	}
	recs := make([]Record, 0, len(hosts))
	for _, h := range hosts {
		rec := e.checkHost(ctx, starttls.Target{Protocol: starttls.SMTP, Host: h.host, Port: e.o.MXPort})
		pref := h.pref
		rec.Domain, rec.MXPreference, rec.ImplicitMX = domain, &pref, h.implicit
		recs = append(recs, rec)
	}
	return recs
}

// checkHost checks an MX host once per scan: the first domain to ask
// checks it, concurrent askers wait for that check (bounded by its
// target deadline), later ones get a copy of the cached record.
func (e *engine) checkHost(ctx context.Context, t starttls.Target) Record {
	ent, owner := e.mx.claim(Key(t))
	if !owner {
		<-ent.done
		rec := ent.rec
		rec.Cached, rec.Attempts = true, 0
		return rec
	}
	rec := e.process(ctx, t)
	slim := rec
	slim.Report = nil // the cache holds summaries only: its memory stays small
	ent.rec = slim
	close(ent.done)
	return rec
}

// hostCache maps MX host keys to their records, at most max entries
// (finished ones are evicted, about half at a time, in map order).
type hostCache struct {
	max int
	mu  sync.Mutex
	m   map[string]*hostEntry
}

type hostEntry struct {
	done chan struct{} // closed when rec is set
	rec  Record
}

func newHostCache(max int) *hostCache { return &hostCache{max: max, m: map[string]*hostEntry{}} }

// claim returns the entry of key, and whether the caller created it (and
// must fill it and close done).
func (c *hostCache) claim(key string) (*hostEntry, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		return e, false
	}
	if len(c.m) >= c.max {
		c.evict()
	}
	e := &hostEntry{done: make(chan struct{})}
	c.m[key] = e
	return e, true
}

func (c *hostCache) evict() {
	n := 0
	for k, e := range c.m {
		select {
		case <-e.done:
			delete(c.m, k)
			n++
		default:
		}
		if n >= c.max/2+1 {
			return
		}
	}
}
