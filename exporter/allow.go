package exporter

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
)

// ErrNotAllowed is returned for a target outside the allow-list.
var ErrNotAllowed = errors.New("target not allowed")

// AllowList says which targets a probe may connect to. Without it the
// exporter checks whatever a client asks for: anyone who can reach
// /probe can make it connect anywhere it can reach (a port scanner with a
// TLS report). Patterns are CIDR prefixes (10.0.0.0/8, ::1/128), single
// addresses, host names (mx.example.org) and wildcards (*.example.org,
// which matches names below example.org, not example.org itself).
type AllowList struct {
	prefixes []netip.Prefix
	names    []string // lower-case, exact
	suffixes []string // ".example.org" for *.example.org
	// lookup resolves names for the address check; a test may replace it.
	lookup func(ctx context.Context, host string) ([]netip.Addr, error)
}

// ParseAllowList parses patterns; none gives a nil list, which allows
// everything.
func ParseAllowList(patterns []string) (*AllowList, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	a := &AllowList{lookup: func(ctx context.Context, host string) ([]netip.Addr, error) {
		return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	}}
	for _, p := range patterns {
		p = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(p), "."))
		switch {
		case p == "":
			return nil, fmt.Errorf("empty --allow pattern")
		case strings.Contains(p, "/"):
			pf, err := netip.ParsePrefix(p)
			if err != nil {
				return nil, fmt.Errorf("--allow %q: %w", p, err)
			}
			a.prefixes = append(a.prefixes, pf.Masked())
		case strings.HasPrefix(p, "*."):
			if strings.Contains(p[2:], "*") || len(p) < 3 {
				return nil, fmt.Errorf("--allow %q: a wildcard is a leading *. only", p)
			}
			a.suffixes = append(a.suffixes, p[1:])
		case strings.Contains(p, "*"):
			return nil, fmt.Errorf("--allow %q: a wildcard is a leading *. only", p)
		default:
			if ip, err := netip.ParseAddr(p); err == nil {
				a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			a.names = append(a.names, p)
		}
	}
	return a, nil
}

// nameAllowed says whether host is allowed by a name pattern.
func (a *AllowList) nameAllowed(host string) bool {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	for _, n := range a.names {
		if h == n {
			return true
		}
	}
	for _, s := range a.suffixes {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

func (a *AllowList) addrAllowed(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Check decides before a probe: a host allowed by name passes; any other
// host passes only when every address it resolves to is in an allowed
// prefix. The dialer (Dial) enforces the address rule again at connect
// time, so a name that resolves differently later is still held to it.
func (a *AllowList) Check(ctx context.Context, host string) error {
	if a == nil || a.nameAllowed(host) {
		return nil
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if a.addrAllowed(ip) {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrNotAllowed, host)
	}
	if len(a.prefixes) == 0 {
		return fmt.Errorf("%w: %s", ErrNotAllowed, host)
	}
	addrs, err := a.lookup(ctx, host)
	if err != nil {
		return fmt.Errorf("%w: %s does not resolve: %v", ErrNotAllowed, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: %s has no address", ErrNotAllowed, host)
	}
	for _, ip := range addrs {
		if !a.addrAllowed(ip) {
			return fmt.Errorf("%w: %s resolves to %s", ErrNotAllowed, host, ip)
		}
	}
	return nil
}

// Dial returns a dial function for check.Options.Dial that connects only
// to allowed addresses: names allowed by a name pattern are dialled as
// usual; for any other, the address actually dialled must be in a prefix.
func (a *AllowList) Dial(d *net.Dialer) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if a == nil {
			return d.DialContext(ctx, network, address)
		}
		host, port, err := net.SplitHostPort(address)
		if err != nil {
			return nil, err
		}
		if a.nameAllowed(host) {
			return d.DialContext(ctx, network, address)
		}
		var addrs []netip.Addr
		if ip, err := netip.ParseAddr(host); err == nil {
			addrs = []netip.Addr{ip}
		} else if addrs, err = a.lookup(ctx, host); err != nil {
			return nil, err
		}
		var lastErr error = fmt.Errorf("%w: %s", ErrNotAllowed, host)
		for _, ip := range addrs {
			if !a.addrAllowed(ip) {
				lastErr = fmt.Errorf("%w: %s (%s)", ErrNotAllowed, host, ip)
				continue
			}
			c, err := d.DialContext(ctx, network, net.JoinHostPort(ip.String(), port))
			if err == nil {
				return c, nil
			}
			lastErr = err
		}
		return nil, lastErr
	}
}
