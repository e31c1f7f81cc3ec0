package tlsprobe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"
)

// Dialer returns a connection positioned where the server expects a
// ClientHello (for STARTTLS protocols, after the plaintext dialogue). Each
// probe calls it once.
type Dialer func(ctx context.Context) (net.Conn, error)

// Options tune a probe run.
type Options struct {
	ServerName  string        // SNI; empty or an IP address sends none
	Timeout     time.Duration // per probe (dial, dialogue and answer); default 10 s
	Concurrency int           // simultaneous connections; default 4
}

// WithDefaults is o with its zero fields set to the defaults, and a
// ServerName that is an IP address cleared (SNI carries host names only).
func (o Options) WithDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	if net.ParseIP(o.ServerName) != nil {
		o.ServerName = ""
	}
	return o
}

// one dials and sends one ClientHello.
func one(ctx context.Context, dial Dialer, o Options, ch ClientHello) (*ServerHello, error) {
	ch.ServerName = o.ServerName
	return dialed(ctx, dial, o, func(ctx context.Context, conn net.Conn) (*ServerHello, error) {
		return Hello(ctx, conn, ch)
	})
}

// dialed runs do on a fresh connection from dial, the dial and the
// exchange bounded together by o.Timeout (o has its defaults).
func dialed[T any](ctx context.Context, dial Dialer, o Options, do func(context.Context, net.Conn) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := dial(ctx)
	if err != nil {
		var zero T
		return zero, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	return do(ctx, conn)
}

func suiteIDs(ss []Suite) []uint16 {
	ids := make([]uint16, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	return ids
}

func groupIDs() []uint16 {
	ids := make([]uint16, len(AllGroups))
	for i, g := range AllGroups {
		ids[i] = g.ID
	}
	return ids
}

// helloFor offers everything that makes sense for v alone.
func helloFor(v Version) ClientHello {
	if v == TLS13 {
		return ClientHello{Version: v, Suites: suiteIDs(tls13Suites), Groups: groupIDs(), KeyShareX25519: true}
	}
	return ClientHello{Version: v, Suites: suiteIDs(offerOrder), Groups: groupIDs()}
}

// accepted interprets a probe's answer for version v: yes, no, or an error
// (timeout, garbage) that leaves the question open.
func accepted(sh *ServerHello, err error, v Version) (bool, error) {
	switch {
	case errors.Is(err, ErrDeclined):
		return false, nil
	case err != nil:
		return false, err
	}
	return sh.Version == v, nil
}

// VersionResult is one version probe's outcome.
func probeVersion(ctx context.Context, dial Dialer, o Options, v Version) (bool, error) {
	sh, err := one(ctx, dial, o, helloFor(v))
	return accepted(sh, err, v)
}

// Versions probes each version alone.
func Versions(ctx context.Context, dial Dialer, o Options) (map[Version]bool, error) {
	o = o.WithDefaults()
	out := map[Version]bool{}
	var mu sync.Mutex
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, v := range AllVersions {
		g.Go(func() error {
			ok, err := probeVersion(gctx, dial, o, v)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", v, err))
				return nil
			}
			out[v] = ok
			return nil
		})
	}
	_ = g.Wait()
	return out, errors.Join(errs...)
}

// Suites returns the suites v accepts, in the order the server chose them
// when offered all at once, minus each chosen one in turn — the server's
// preference order if it has one, else the client's. When the server gives
// up part-way (a suite it enabled but cannot complete, such as DHE without
// parameters), the rest is tried one key-exchange class at a time so that
// one broken class does not hide the others.
func Suites(ctx context.Context, dial Dialer, v Version, o Options) ([]Suite, error) {
	o = o.WithDefaults()
	pool := offerOrder
	if v == TLS13 {
		pool = tls13Suites
	}
	got, remaining, err := enumerate(ctx, dial, v, o, slices.Clone(pool))
	if err != nil || len(remaining) == 0 || v == TLS13 {
		return got, err
	}
	for _, class := range []string{"TLS_ECDHE_", "TLS_DHE_", "TLS_RSA_", ""} {
		var sub []Suite
		for _, s := range remaining {
			if suiteClass(s.Name) == class {
				sub = append(sub, s)
			}
		}
		more, _, err := enumerate(ctx, dial, v, o, sub)
		got = append(got, more...)
		if err != nil {
			return got, err
		}
	}
	return got, nil
}

// suiteClass is a suite's key-exchange prefix, or "" for the rest.
func suiteClass(name string) string {
	for _, c := range []string{"TLS_ECDHE_", "TLS_DHE_", "TLS_RSA_"} {
		if strings.HasPrefix(name, c) {
			return c
		}
	}
	return ""
}

// enumerate offers remaining, removes the server's choice, and repeats
// until the server declines; it returns the chosen suites and the rest.
func enumerate(ctx context.Context, dial Dialer, v Version, o Options, remaining []Suite) ([]Suite, []Suite, error) {
	var got []Suite
	for i, n := 0, len(remaining); i <= n && len(remaining) > 0; i++ {
		ch := helloFor(v)
		ch.Suites = suiteIDs(remaining)
		sh, err := one(ctx, dial, o, ch)
		if errors.Is(err, ErrDeclined) || (err == nil && sh.Version != v) {
			break
		}
		if err != nil {
			return got, remaining, err
		}
		idx := slices.IndexFunc(remaining, func(s Suite) bool { return s.ID == sh.Suite })
		if idx < 0 {
			return got, remaining, fmt.Errorf("%w: server chose suite %s, which was not offered", ErrNotTLS, SuiteName(sh.Suite))
		}
		got = append(got, remaining[idx])
		remaining = slices.Delete(remaining, idx, idx+1)
	}
	return got, remaining, nil
}

// ServerPrefersOwnOrder offers the accepted suites in two other orders,
// reversed and rotated by one. A server that follows the client takes the
// first suite of each; one that imposes its order, even partly (Go servers
// follow the client only between AES-GCM and ChaCha20), does not.
func ServerPrefersOwnOrder(ctx context.Context, dial Dialer, v Version, accepted []Suite, o Options) (bool, error) {
	o = o.WithDefaults()
	if len(accepted) < 2 {
		return true, nil
	}
	rev := slices.Clone(accepted)
	slices.Reverse(rev)
	rot := append(slices.Clone(accepted[1:]), accepted[0])
	for _, offer := range [][]Suite{rev, rot} {
		ch := helloFor(v)
		ch.Suites = suiteIDs(offer)
		sh, err := one(ctx, dial, o, ch)
		if err != nil {
			return false, err
		}
		if sh.Suite != offer[0].ID {
			return true, nil
		}
	}
	return false, nil
}

// Groups returns the key-exchange groups the server accepts, using TLS 1.3
// HelloRetryRequests when tls13 is true, else ECDHE suites in TLS 1.2.
func Groups(ctx context.Context, dial Dialer, tls13 bool, o Options) ([]Group, error) {
	o = o.WithDefaults()
	var mu sync.Mutex
	ok := map[uint16]bool{}
	var errs []error
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.Concurrency)
	for _, grp := range AllGroups {
		if !tls13 && (grp.ID >= 0x0100 && grp.ID <= 0x01FF || grp.ID >= 0x0200) {
			// TLS 1.2 servers choose DH parameters by themselves, whatever the
			// client lists, and hybrid groups exist only in TLS 1.3.
			continue
		}
		g.Go(func() error {
			var yes bool
			var err error
			if tls13 {
				// No key share: the server must name the group in a HelloRetryRequest.
				ch := helloFor(TLS13)
				ch.KeyShareX25519 = false
				ch.Groups = []uint16{grp.ID}
				var sh *ServerHello
				sh, err = one(gctx, dial, o, ch)
				yes, err = accepted(sh, err, ch.Version)
				// The HRR or ServerHello names the group; it must be ours.
				yes = yes && sh.Group == grp.ID
			} else {
				yes, err = ecdheGroup(gctx, dial, o, grp.ID)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("group %s: %w", grp.Name, err))
			}
			ok[grp.ID] = yes
			return nil
		})
	}
	_ = g.Wait()
	var out []Group
	for _, grp := range AllGroups {
		if ok[grp.ID] {
			out = append(out, grp)
		}
	}
	return out, errors.Join(errs...)
}

// certCurves are the curves of ECDSA certificates. A TLS 1.2 server with
// such a certificate refuses a client that does not list its curve (RFC
// 8422 §5.1), so a group offered alone can look refused when it is not.
var certCurves = []uint16{0x0017, 0x0018, 0x0019}

// ecdheGroup reports whether a TLS 1.2 server does ECDHE with group: first
// offered alone, then with the certificate curves after it, the
// ServerKeyExchange telling which one was used.
func ecdheGroup(ctx context.Context, dial Dialer, o Options, group uint16) (bool, error) {
	offers := [][]uint16{{group}}
	if !slices.Contains(certCurves, group) {
		offers = append(offers, append([]uint16{group}, certCurves...))
	}
	var lastErr error
	for _, groups := range offers {
		ch := helloFor(TLS12)
		ch.Suites = ecdheSuites()
		ch.Groups = groups
		ch.ServerName = o.ServerName
		cctx, cancel := context.WithTimeout(ctx, o.Timeout)
		conn, err := dial(cctx)
		if err != nil {
			cancel()
			return false, fmt.Errorf("dial: %w", err)
		}
		sh, used, err := HelloKeyExchange(cctx, conn, ch)
		conn.Close()
		cancel()
		yes, err := accepted(sh, err, ch.Version)
		if err != nil {
			lastErr = err
			continue
		}
		if yes && slices.Contains(ch.Suites, sh.Suite) && used == group {
			return true, nil
		}
	}
	return false, lastErr
}

func ecdheSuites() []uint16 {
	var ids []uint16
	for _, s := range offerOrder {
		if len(s.Name) > 10 && s.Name[:10] == "TLS_ECDHE_" {
			ids = append(ids, s.ID)
		}
	}
	return ids
}

// Result is a whole probe run, keyed for reports.
type Result struct {
	Versions    map[string]bool     // "sslv3" ... "tls1.3"
	Suites      map[string][]string // version key -> IANA names, in preference order
	ServerOrder map[string]bool     // version key -> the server imposes its order
	Groups      []string
	Errors      []string // probes that could not complete (timeouts, garbage)
}

// Probe runs versions, then suites and order per accepted version, then
// groups, each probe bounded by o.Timeout.
func Probe(ctx context.Context, dial Dialer, o Options) (*Result, error) {
	o = o.WithDefaults()
	res := &Result{Versions: map[string]bool{}, Suites: map[string][]string{}, ServerOrder: map[string]bool{}}
	vs, err := Versions(ctx, dial, o)
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	for v, ok := range vs {
		res.Versions[v.Key()] = ok
	}
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	for _, v := range AllVersions {
		if !vs[v] {
			continue
		}
		g.Go(func() error {
			suites, err := Suites(gctx, dial, v, o)
			var own bool
			var oerr error
			if err == nil {
				own, oerr = ServerPrefersOwnOrder(gctx, dial, v, suites, o)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, s := range suites {
				res.Suites[v.Key()] = append(res.Suites[v.Key()], s.Name)
			}
			if err != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s suites: %v", v, err))
			} else if oerr != nil {
				res.Errors = append(res.Errors, fmt.Sprintf("%s order: %v", v, oerr))
			} else {
				res.ServerOrder[v.Key()] = own
			}
			return nil
		})
	}
	g.Go(func() error {
		if !vs[TLS13] && !vs[TLS12] {
			return nil
		}
		groups, err := Groups(gctx, dial, vs[TLS13], o)
		mu.Lock()
		defer mu.Unlock()
		for _, grp := range groups {
			res.Groups = append(res.Groups, grp.Name)
		}
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
		}
		return nil
	})
	_ = g.Wait()
	return res, ctx.Err()
}
