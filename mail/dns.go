package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// Resolver asks one recursive resolver over UDP (TCP when truncated) with
// the AD bit set, so that a validating resolver says whether each answer
// is DNSSEC-secure (RFC 6840 §5.7).
type Resolver struct {
	// Addr is host:port of the resolver.
	Addr string
	// TrustAD makes AD bits count although the resolver is not on
	// loopback (the path to a remote resolver is not protected).
	TrustAD bool
	// Timeout bounds each query. Default 5 s.
	Timeout time.Duration
}

// SystemResolver returns the first name server of /etc/resolv.conf.
func SystemResolver() (string, error) {
	cfg, err := dns.ClientConfigFromFile("/etc/resolv.conf")
	if err != nil {
		return "", fmt.Errorf("reading /etc/resolv.conf: %w", err)
	}
	if len(cfg.Servers) == 0 {
		return "", errors.New("/etc/resolv.conf names no name server")
	}
	return net.JoinHostPort(cfg.Servers[0], cfg.Port), nil
}

// NormalizeResolver adds port 53 when addr has none.
func NormalizeResolver(addr string) (string, error) {
	if _, _, err := net.SplitHostPort(addr); err == nil {
		return addr, nil
	}
	h := strings.Trim(addr, "[]")
	if h == "" {
		return "", fmt.Errorf("empty resolver address")
	}
	return net.JoinHostPort(h, "53"), nil
}

// ADTrusted reports whether the resolver's AD bits can be believed: it is
// on loopback, or the caller said so.
func (r *Resolver) ADTrusted() bool {
	if r.TrustAD {
		return true
	}
	h, _, err := net.SplitHostPort(r.Addr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(h)
	return err == nil && ip.IsLoopback()
}

// Answer is the outcome of one query.
type Answer struct {
	Name  string // the name asked (FQDN)
	Rcode int
	// Secure is the resolver's AD bit, only when ADTrusted.
	Secure bool
	// AD is the raw AD bit.
	AD bool
	// Final is the name at the end of the CNAME chain (Name when none).
	Final string
	// Chain lists the CNAME targets followed, in order.
	Chain []string
	// RRs are the answer records of the asked type owned by Final.
	RRs []dns.RR
}

// NXDomain reports an authoritative "no such name".
func (a *Answer) NXDomain() bool { return a.Rcode == dns.RcodeNameError }

// Query asks for one type. A non-nil error means no usable answer
// (network failure, SERVFAIL, REFUSED ...); NXDOMAIN and NODATA are
// answers.
func (r *Resolver) Query(ctx context.Context, name string, qtype uint16) (*Answer, error) {
	fq := dns.Fqdn(strings.ToLower(name))
	m := new(dns.Msg)
	m.SetQuestion(fq, qtype)
	m.RecursionDesired = true
	m.AuthenticatedData = true
	m.SetEdns0(1232, true)
	timeout := r.Timeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	var in *dns.Msg
	var err error
	for _, network := range []string{"udp", "tcp"} {
		c := &dns.Client{Net: network, Timeout: timeout}
		qctx, cancel := context.WithTimeout(ctx, timeout)
		in, _, err = c.ExchangeContext(qctx, m, r.Addr)
		cancel()
		if err != nil || !in.Truncated {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s via %s: %w", fq, dns.TypeToString[qtype], r.Addr, err)
	}
	if in.Rcode != dns.RcodeSuccess && in.Rcode != dns.RcodeNameError {
		return nil, fmt.Errorf("%s %s via %s: %s", fq, dns.TypeToString[qtype], r.Addr, dns.RcodeToString[in.Rcode])
	}
	a := &Answer{Name: fq, Rcode: in.Rcode, AD: in.AuthenticatedData, Final: fq}
	a.Secure = a.AD && r.ADTrusted()
	// Follow the CNAME chain inside the answer section (bounded).
	for i := 0; i < 16; i++ {
		next := ""
		for _, rr := range in.Answer {
			if c, ok := rr.(*dns.CNAME); ok && strings.EqualFold(c.Hdr.Name, a.Final) {
				next = strings.ToLower(c.Target)
				break
			}
		}
		if next == "" || qtype == dns.TypeCNAME {
			break
		}
		a.Final = next
		a.Chain = append(a.Chain, next)
	}
	for _, rr := range in.Answer {
		if rr.Header().Rrtype == qtype && strings.EqualFold(rr.Header().Name, a.Final) {
			a.RRs = append(a.RRs, rr)
		}
	}
	return a, nil
}

// TXT returns each TXT record's strings concatenated (RFC 8461 §3.1,
// RFC 8460 §3), with the answer.
func (r *Resolver) TXT(ctx context.Context, name string) ([]string, *Answer, error) {
	a, err := r.Query(ctx, name, dns.TypeTXT)
	if err != nil {
		return nil, nil, err
	}
	var out []string
	for _, rr := range a.RRs {
		out = append(out, strings.Join(rr.(*dns.TXT).Txt, ""))
	}
	return out, a, nil
}

// Addresses resolves A and AAAA. secure is true only when every answer
// that was received is secure.
func (r *Resolver) Addresses(ctx context.Context, name string) (addrs []string, final string, secure bool, err error) {
	secure = true
	final = dns.Fqdn(strings.ToLower(name))
	var errs []error
	for _, t := range []uint16{dns.TypeA, dns.TypeAAAA} {
		a, qerr := r.Query(ctx, name, t)
		if qerr != nil {
			errs = append(errs, qerr)
			secure = false
			continue
		}
		secure = secure && a.Secure
		if a.Final != a.Name {
			final = a.Final
		}
		for _, rr := range a.RRs {
			switch v := rr.(type) {
			case *dns.A:
				addrs = append(addrs, v.A.String())
			case *dns.AAAA:
				addrs = append(addrs, v.AAAA.String())
			}
		}
	}
	if len(addrs) == 0 && len(errs) > 0 {
		return nil, final, false, errors.Join(errs...)
	}
	return addrs, final, secure, nil
}
