package scan

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
)

// sources hands out the local address of each target's connections.
// Every connection to one remote address and port needs its own local
// address and port pair; a scanner that opens thousands of connections a
// second from one address runs out of ephemeral ports (28,000 on Linux by
// default, each held for a minute in TIME_WAIT). Spreading the
// connections over many local addresses multiplies the ports: over
// Options.SourceRange when given, and over 127.0.0.0/8 for loopback
// targets (benchmarks, tests) when no source is given.
type sources struct {
	fixed netip.Addr   // Options.SourceIP
	rng   netip.Prefix // Options.SourceRange
	size  uint64       // addresses used from rng
	next  atomic.Uint64
}

// loopbackSpread is where loopback targets' connections come from
// without a source: 65,534 addresses of 127.0.0.0/8, all on lo.
var loopbackSpread = netip.MustParsePrefix("127.0.0.0/16")

// maxSpread bounds the addresses used from a range: enough ports for any
// rate, and no big-number arithmetic per connection.
const maxSpread = 1 << 16

func newSources(fixed netip.Addr, rng netip.Prefix) *sources {
	return &sources{fixed: fixed, rng: rng.Masked(), size: spreadSize(rng)}
}

// spreadSize is how many addresses of p are used (p's network address,
// the first, is skipped where p has more than two).
func spreadSize(p netip.Prefix) uint64 {
	if !p.IsValid() {
		return 0
	}
	host := p.Addr().BitLen() - p.Bits()
	if host >= 17 {
		return maxSpread
	}
	n := uint64(1) << host
	if n > 2 {
		n -= 2 // neither the network nor the broadcast address
	}
	return n
}

// pick returns the local address for a target at remote, or nil for the
// system's choice.
func (s *sources) pick(remote netip.Addr) net.Addr {
	switch {
	case s.rng.IsValid():
		return &net.TCPAddr{IP: s.nth(s.rng, s.size, s.next.Add(1)-1).AsSlice()}
	case s.fixed.IsValid():
		return &net.TCPAddr{IP: s.fixed.AsSlice(), Zone: s.fixed.Zone()}
	case remote.Unmap().Is4() && remote.Unmap().IsLoopback():
		return &net.TCPAddr{IP: s.nth(loopbackSpread, spreadSize(loopbackSpread), s.next.Add(1)-1).AsSlice()}
	}
	return nil
}

// nth is address i (mod size) of p, counted from its first host
// address. p is masked and the offset is below 2^host bits, so adding it
// to the low 64 bits never carries.
func (s *sources) nth(p netip.Prefix, size, i uint64) netip.Addr {
	off := i % size
	if p.Addr().BitLen()-p.Bits() > 1 {
		off++ // skip the network address
	}
	if p.Addr().Is4() {
		a := p.Addr().As4()
		binary.BigEndian.PutUint32(a[:], binary.BigEndian.Uint32(a[:])+uint32(off))
		return netip.AddrFrom4(a)
	}
	a := p.Addr().As16()
	binary.BigEndian.PutUint64(a[8:], binary.BigEndian.Uint64(a[8:])+off)
	return netip.AddrFrom16(a)
}

// dialer is the scan's dialer for one target: from local (nil: the
// system's choice), with a token of --rate for every connection when a
// limiter is set. The token wait is bounded by the target's deadline
// (tctx), not by the phase deadline the check dials with: a token that
// is seconds away is the scan's pace, not the server's slowness, and must
// not turn into a connect-timeout. The connect itself gets a phase's time.
func (e *engine) dialer(tctx context.Context, local net.Addr) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: e.o.Timeout}
		if local != nil {
			d.LocalAddr, d.Control = local, bindNoPort
		}
		if e.limiter != nil {
			if err := e.limiter.Wait(tctx); err != nil {
				return nil, fmt.Errorf("waiting for the rate limit: %w", err)
			}
			ctx = tctx
		}
		return d.DialContext(ctx, network, addr)
	}
}

// setBindNoPort is set (Linux) to ask for IP_BIND_ADDRESS_NO_PORT.
var setBindNoPort func(fd uintptr) error

// bindNoPort lets the kernel choose the local port at connect time, from
// the whole 4-tuple: a bind to a local address otherwise reserves a port
// for that address alone, and ports run out at a few tens of thousands of
// connections whatever the remote addresses.
func bindNoPort(_, _ string, c syscall.RawConn) error {
	if setBindNoPort == nil {
		return nil
	}
	// Best effort: without it (an old kernel, an IPv6 socket that refuses
	// the option) the bind takes a port as before.
	_ = c.Control(func(fd uintptr) { _ = setBindNoPort(fd) })
	return nil
}
