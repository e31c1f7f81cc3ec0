package tlsrpt

import (
	"net"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limits bound what one client IP may do: a report sender delivers a few
// messages a day, so anything beyond a trickle is abuse.
type Limits struct {
	// PerMinute is the sustained rate of new connections (or HTTP
	// requests) per client IP; Burst the bucket size. Defaults 30 and 10.
	PerMinute float64
	Burst     int
	// MaxConcurrent caps simultaneous sessions per client IP (default 5)
	// and MaxTotal all sessions (default 200).
	MaxConcurrent, MaxTotal int
}

func (l Limits) orDefault() Limits {
	if l.PerMinute <= 0 {
		l.PerMinute = 30
	}
	if l.Burst <= 0 {
		l.Burst = 10
	}
	if l.MaxConcurrent <= 0 {
		l.MaxConcurrent = 5
	}
	if l.MaxTotal <= 0 {
		l.MaxTotal = 200
	}
	return l
}

// limiter tracks per-IP token buckets and open sessions.
type limiter struct {
	l     Limits
	mu    sync.Mutex
	ips   map[string]*ipState
	total int
}

type ipState struct {
	bucket *rate.Limiter
	open   int
	seen   time.Time
}

func newLimiter(l Limits) *limiter {
	return &limiter{l: l.orDefault(), ips: map[string]*ipState{}}
}

// acquire says whether a new session from ip may start; when it may,
// release must be called at its end.
func (lm *limiter) acquire(ip string) (release func(), ok bool) {
	lm.mu.Lock()
	defer lm.mu.Unlock()
	now := time.Now()
	if len(lm.ips) > 10000 {
		// Forget idle clients rather than grow without bound.
		for k, st := range lm.ips {
			if st.open == 0 && now.Sub(st.seen) > 10*time.Minute {
				delete(lm.ips, k)
			}
		}
	}
	st := lm.ips[ip]
	if st == nil {
		st = &ipState{bucket: rate.NewLimiter(rate.Limit(lm.l.PerMinute/60), lm.l.Burst)}
		lm.ips[ip] = st
	}
	st.seen = now
	if lm.total >= lm.l.MaxTotal || st.open >= lm.l.MaxConcurrent || !st.bucket.AllowN(now, 1) {
		return nil, false
	}
	st.open++
	lm.total++
	var once sync.Once
	return func() {
		once.Do(func() {
			lm.mu.Lock()
			st.open--
			lm.total--
			lm.mu.Unlock()
		})
	}, true
}

func hostOf(addr net.Addr) string {
	if addr == nil {
		return ""
	}
	h, _, err := net.SplitHostPort(addr.String())
	if err != nil {
		return addr.String()
	}
	return h
}

// limitedListener refuses connections over the limits with a short
// message (SMTP's 421) before any protocol starts.
type limitedListener struct {
	net.Listener
	lm     *limiter
	refuse string
}

func newLimitedListener(l net.Listener, lim Limits, refuse string) net.Listener {
	return &limitedListener{Listener: l, lm: newLimiter(lim), refuse: refuse}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		release, ok := l.lm.acquire(hostOf(c.RemoteAddr()))
		if ok {
			return &releaseConn{Conn: c, release: release}, nil
		}
		go func() {
			_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = c.Write([]byte(l.refuse))
			c.Close()
		}()
	}
}

type releaseConn struct {
	net.Conn
	release func()
}

func (c *releaseConn) Close() error {
	c.release()
	return c.Conn.Close()
}
