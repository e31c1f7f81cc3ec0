package scan

import (
	"context"
	"math"
	"net"
	"net/netip"
	"sync"
	"time"
)

// subnetLimiter allows at most k concurrent checks per IPv4 /24 (IPv6
// /48). Its map holds only prefixes in use: O(concurrency).
type subnetLimiter struct {
	k    int
	mu   sync.Mutex
	n    map[netip.Prefix]int
	wake chan struct{}
	max  map[netip.Prefix]int // observed peaks, kept only when tracking (tests)
}

func newSubnetLimiter(k int) *subnetLimiter {
	return &subnetLimiter{k: k, n: map[netip.Prefix]int{}, wake: make(chan struct{})}
}

// Subnet is the politeness unit of an address: its /24 (IPv4) or /48 (IPv6).
func Subnet(ip netip.Addr) netip.Prefix {
	ip = ip.Unmap()
	bits := 24
	if ip.Is6() {
		bits = 48
	}
	p, _ := ip.Prefix(bits)
	return p
}

func (l *subnetLimiter) acquire(ctx context.Context, p netip.Prefix) error {
	if l == nil || l.k <= 0 {
		return nil
	}
	for {
		l.mu.Lock()
		if l.n[p] < l.k {
			l.n[p]++
			if l.max != nil && l.n[p] > l.max[p] {
				l.max[p] = l.n[p]
			}
			l.mu.Unlock()
			return nil
		}
		wake := l.wake
		l.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (l *subnetLimiter) release(p netip.Prefix) {
	if l == nil || l.k <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n[p]--; l.n[p] <= 0 {
		delete(l.n, p)
	}
	close(l.wake)
	l.wake = make(chan struct{})
}

// resolver resolves host names concurrently, each name once at a time,
// and caches answers (negative ones too) in a bounded map.
type resolver struct {
	r       *net.Resolver
	network string // "ip", or "ip4"/"ip6" to match a source address
	timeout time.Duration
	max     int
	mu      sync.Mutex
	m       map[string]*dnsEntry
}

type dnsEntry struct {
	done chan struct{}
	ip   netip.Addr
	err  error
}

func newResolver(r *net.Resolver, source netip.Addr, timeout time.Duration, max int) *resolver {
	if r == nil {
		r = net.DefaultResolver
	}
	network := "ip"
	switch {
	case source.Unmap().Is4():
		network = "ip4"
	case source.Is6():
		network = "ip6"
	}
	return &resolver{r: r, network: network, timeout: timeout, max: max, m: map[string]*dnsEntry{}}
}

// lookup returns an address of host, IPv4 first. Concurrent lookups of
// one name share one query.
func (r *resolver) lookup(ctx context.Context, host string) (netip.Addr, error) {
	if ip, err := netip.ParseAddr(host); err == nil {
		if !r.family(ip) {
			return netip.Addr{}, &net.AddrError{Err: "not of the source address's family (" + r.network + ")", Addr: host}
		}
		return ip, nil
	}
	r.mu.Lock()
	e, ok := r.m[host]
	if !ok {
		if len(r.m) >= r.max {
			r.evict()
		}
		e = &dnsEntry{done: make(chan struct{})}
		r.m[host] = e
		go r.resolve(host, e)
	}
	r.mu.Unlock()
	select {
	case <-e.done:
		return e.ip, e.err
	case <-ctx.Done():
		return netip.Addr{}, ctx.Err()
	}
}

// family reports whether ip can be reached from the source address.
func (r *resolver) family(ip netip.Addr) bool {
	switch r.network {
	case "ip4":
		return ip.Unmap().Is4()
	case "ip6":
		return !ip.Unmap().Is4()
	}
	return true
}

// resolve runs without the caller's context: other targets may wait on it.
func (r *resolver) resolve(host string, e *dnsEntry) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout)
	defer cancel()
	ips, err := r.r.LookupNetIP(ctx, r.network, host)
	switch {
	case err != nil:
		e.err = err
	case len(ips) == 0:
		e.err = &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
	default:
		e.ip = ips[0].Unmap()
		for _, ip := range ips {
			if ip.Unmap().Is4() {
				e.ip = ip.Unmap()
				break
			}
		}
	}
	close(e.done)
}

// evict drops finished entries (about half), keeping the map bounded.
func (r *resolver) evict() {
	n := 0
	for k, e := range r.m {
		select {
		case <-e.done:
			delete(r.m, k)
			n++
		default:
		}
		if n >= r.max/2+1 {
			return
		}
	}
}

// workersFor is the default concurrency. Without a rate, 100. With one,
// enough targets in flight to keep the rate busy however far away they
// are: by Little's law the targets in flight are the rate times the time
// each takes, which is a few round trips for a server that answers and a
// phase timeout for one that does not; rate × timeout covers both (at
// 1,000/s and 5 s, 5,000 workers: idle ones wait for a token and cost a
// goroutine each). It stays within a quarter of the descriptors the
// process may open (each target may hold a few connections at once).
func workersFor(rate float64, timeout time.Duration, fds int) int {
	if rate <= 0 {
		return 100
	}
	n := int(math.Ceil(rate * timeout.Seconds()))
	return max(100, min(n, fds/4))
}
