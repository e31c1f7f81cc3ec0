package watch

import (
	"container/heap"
	"context"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/scan"
	"github.com/starttls-go/starttls/watch/store"
)

// item is one scheduled subject.
type item struct {
	key      string
	kind     string
	target   starttls.Target
	domain   string
	depth    string
	interval time.Duration
	routes   []string
	next     time.Time
	index    int  // in the heap; -1 while running
	removed  bool // dropped by a reload while running
}

type queue []*item

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int)      { q[i], q[j] = q[j], q[i]; q[i].index = i; q[j].index = j }
func (q *queue) Push(x any)        { it := x.(*item); it.index = len(*q); *q = append(*q, it) }
func (q *queue) Pop() any {
	old := *q
	it := old[len(old)-1]
	*q = old[:len(old)-1]
	it.index = -1
	return it
}

// scheduler runs each subject every interval, jittered, with at most
// Concurrency runs at once, a connection rate limit and a per-subnet
// connection limit as in scan (its /24 and /48 units).
type scheduler struct {
	w       *Watcher
	conc    int
	limiter *rate.Limiter
	subnets *subnetSem

	mu     sync.Mutex
	q      queue
	items  map[string]*item
	wake   chan struct{}
	jitter float64
}

func newScheduler(w *Watcher, cfg *Config) *scheduler {
	s := &scheduler{w: w, conc: cfg.Concurrency, items: map[string]*item{}, wake: make(chan struct{}, 1), subnets: newSubnetSem(cfg.PerSubnet)}
	if cfg.Rate > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(cfg.Rate), max(1, int(cfg.Rate)))
	}
	s.reload(cfg)
	return s
}

func itemsOf(cfg *Config) []*item {
	var out []*item
	iv := func(d Duration) time.Duration {
		if d == 0 {
			return cfg.Interval.D()
		}
		return d.D()
	}
	for _, t := range cfg.Targets {
		out = append(out, &item{key: TargetKey(t.target), kind: store.KindTarget, target: t.target, depth: t.Depth, interval: iv(t.Interval), routes: t.Alerts})
	}
	for _, d := range cfg.Domains {
		out = append(out, &item{key: DomainKey(d.Domain), kind: store.KindDomain, domain: d.Domain, interval: iv(d.Interval), routes: d.Alerts})
	}
	return out
}

// reload replaces the set of subjects; kept ones keep their next run.
func (s *scheduler) reload(cfg *Config) {
	now := s.w.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jitter = cfg.Jitter
	if s.limiter != nil && cfg.Rate > 0 {
		s.limiter.SetLimit(rate.Limit(cfg.Rate))
	}
	fresh := itemsOf(cfg)
	keep := map[string]bool{}
	// A first run is spread over the interval in proportion to the
	// number of subjects: a handful start at once, 10,000 spread evenly.
	spread := min(1, float64(len(fresh))/float64(max(1, 100*s.conc/64)))
	for _, it := range fresh {
		keep[it.key] = true
		if old, ok := s.items[it.key]; ok {
			old.depth, old.routes, old.target, old.domain = it.depth, it.routes, it.target, it.domain
			if old.interval != it.interval {
				old.interval = it.interval
				if old.index >= 0 && old.next.After(now.Add(it.interval)) {
					old.next = now.Add(time.Duration(rand.Float64() * float64(it.interval)))
					heap.Fix(&s.q, old.index)
				}
			}
			continue
		}
		it.next = now.Add(time.Duration(rand.Float64() * spread * float64(it.interval)))
		s.items[it.key] = it
		heap.Push(&s.q, it)
	}
	for key, it := range s.items {
		if keep[key] {
			continue
		}
		delete(s.items, key)
		if it.index >= 0 {
			heap.Remove(&s.q, it.index)
		} else {
			it.removed = true
		}
	}
	s.w.Metrics.Subjects.Store(int64(len(s.items)))
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run dispatches due items to conc workers until ctx ends, then waits
// for the running ones.
func (s *scheduler) run(ctx context.Context) {
	jobs := make(chan *item)
	var wg sync.WaitGroup
	for range s.conc {
		wg.Go(func() {
			for it := range jobs {
				s.w.process(ctx, it)
				s.done(it)
			}
		})
	}
	defer func() { close(jobs); wg.Wait() }()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		s.mu.Lock()
		var due *item
		wait := time.Hour
		if len(s.q) > 0 {
			if d := s.q[0].next.Sub(s.w.Now()); d <= 0 {
				due = heap.Pop(&s.q).(*item)
			} else {
				wait = d
			}
		}
		s.mu.Unlock()
		if due != nil {
			select {
			case jobs <- due:
				continue
			case <-ctx.Done():
				return
			}
		}
		timer.Reset(wait)
		select {
		case <-timer.C:
		case <-s.wake:
		case <-ctx.Done():
			return
		}
	}
}

// done puts an item back for its next run, jittered by ±jitter.
func (s *scheduler) done(it *item) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it.removed {
		return
	}
	j := 1 + s.jitter*(2*rand.Float64()-1)
	it.next = s.w.Now().Add(time.Duration(j * float64(it.interval)))
	heap.Push(&s.q, it)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// has reports whether subject is scheduled.
func (s *scheduler) has(subject string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.items[subject] != nil
}

// waitToken takes a token of the connection rate limit.
func (s *scheduler) waitToken(ctx context.Context) error {
	if s.limiter == nil {
		return nil
	}
	return s.limiter.Wait(ctx)
}

// dial opens every check connection: one rate token each, and a slot of
// the destination's subnet for as long as the connection is open.
func (s *scheduler) dial(ctx context.Context, network, address string) (net.Conn, error) {
	if err := s.waitToken(ctx); err != nil {
		return nil, err
	}
	var p netip.Prefix
	if ap, err := netip.ParseAddrPort(address); err == nil {
		p = scan.Subnet(ap.Addr())
		if err := s.subnets.acquire(ctx, p); err != nil {
			return nil, err
		}
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, network, address)
	if err != nil {
		s.subnets.release(p)
		return nil, err
	}
	if !p.IsValid() {
		return c, nil
	}
	return &releaseConn{Conn: c, release: func() { s.subnets.release(p) }}, nil
}

type releaseConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *releaseConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// subnetSem bounds open connections per subnet; k <= 0 means no bound.
type subnetSem struct {
	k  int
	mu sync.Mutex
	n  map[netip.Prefix]int
	ch map[netip.Prefix]chan struct{}
}

func newSubnetSem(k int) *subnetSem {
	return &subnetSem{k: k, n: map[netip.Prefix]int{}, ch: map[netip.Prefix]chan struct{}{}}
}

func (s *subnetSem) acquire(ctx context.Context, p netip.Prefix) error {
	if s.k <= 0 || !p.IsValid() {
		return nil
	}
	for {
		s.mu.Lock()
		if s.n[p] < s.k {
			s.n[p]++
			s.mu.Unlock()
			return nil
		}
		ch, ok := s.ch[p]
		if !ok {
			ch = make(chan struct{})
			s.ch[p] = ch
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *subnetSem) release(p netip.Prefix) {
	if s.k <= 0 || !p.IsValid() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n[p]--; s.n[p] <= 0 {
		delete(s.n, p)
	}
	if ch, ok := s.ch[p]; ok {
		close(ch)
		delete(s.ch, p)
	}
}
