package check

import (
	"context"
	"crypto/x509"
	"fmt"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/certinfo"
	"github.com/starttls-go/starttls/tlsprobe"
)

func init() { registerVuln("weak-dh", weakDH) }

// flightOptions are the raw prober's options for this check.
func (c *run) flightOptions() tlsprobe.Options {
	o := tlsprobe.Options{Timeout: c.o.Timeout, Concurrency: c.o.Concurrency}
	if !certinfo.IsIP(c.o.ServerName) {
		o.ServerName = c.o.ServerName
	}
	return o
}

// firstFlight reads the certificate from the server's first flight when
// the main session's handshake failed: a server that only speaks what
// crypto/tls lacks (DHE, old suites) still shows its chain in cleartext
// before the key exchange, and every certificate finding applies to it.
func (c *run) firstFlight(ctx context.Context) {
	ff, err := tlsprobe.FirstFlightHello(ctx, c.dialer(), c.flightOptions(), tlsprobe.TLS12, nil)
	if err != nil {
		c.probeError(fmt.Sprintf("first flight: %v", err))
		return
	}
	var chain []*x509.Certificate
	for i, der := range ff.Certificates {
		cert, err := x509.ParseCertificate(der)
		if err != nil {
			c.probeError(fmt.Sprintf("first flight: certificate %d: %v", i, err))
			return
		}
		chain = append(chain, cert)
	}
	if len(chain) == 0 {
		c.probeError(fmt.Sprintf("first flight: %s sends no certificate", tlsprobe.SuiteName(ff.Hello.Suite)))
		return
	}
	c.certificateFindings(chain, ff.OCSPStapled)
	c.withFacts(func(f *TLSFacts) { f.FirstFlight = true })
}

// isDHE is a finite-field ephemeral suite whose ServerKeyExchange carries
// the group (PSK variants put a hint first and are left out).
func isDHE(name string) bool {
	return (strings.Contains(name, "_DHE_") || strings.Contains(name, "_DH_anon_")) && !strings.Contains(name, "PSK")
}

// acceptedDHE returns the highest version with an accepted DHE suite, and
// those suites' ids.
func (c *run) acceptedDHE() (tlsprobe.Version, []uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ids := map[string]uint16{}
	for _, s := range tlsprobe.AllSuites {
		ids[s.Name] = s.ID
	}
	for i := len(tlsprobe.AllVersions) - 1; i >= 0; i-- {
		v := tlsprobe.AllVersions[i]
		var out []uint16
		for _, name := range c.r.TLS.CipherSuites[v.Key()] {
			if id, ok := ids[name]; ok && isDHE(name) {
				out = append(out, id)
			}
		}
		if len(out) > 0 {
			return v, out
		}
	}
	return 0, nil
}

// weakDH reads the DHE group from a first flight that offers only the
// accepted DHE suites. Under 2048 bits the group is within reach of
// precomputation (Logjam); a well-known 1024-bit prime is the case where
// one precomputation serves against every server that shares it.
func weakDH(ctx context.Context, c *run) {
	start := time.Now()
	v, suites := c.acceptedDHE()
	if len(suites) == 0 {
		c.vuln("weak-dh", "n/a: no DHE suite accepted", time.Since(start))
		return
	}
	ff, err := tlsprobe.FirstFlightHello(ctx, c.dialer(), c.flightOptions(), v, suites)
	switch {
	case err != nil:
		c.vuln("weak-dh", "error: "+err.Error(), time.Since(start))
		return
	case ff.KeyExchange.Kind != "dhe":
		c.vuln("weak-dh", fmt.Sprintf("error: offered only DHE suites, the server chose %s", tlsprobe.SuiteName(ff.Hello.Suite)), time.Since(start))
		return
	}
	bits := ff.KeyExchange.DHBits()
	group, named := tlsprobe.LookupDHGroup(ff.KeyExchange.P)
	desc := fmt.Sprintf("%d-bit DH group", bits)
	if named {
		desc += " " + group.Name
	} else {
		desc += " (not a well-known prime)"
	}
	c.withFacts(func(f *TLSFacts) {
		f.DHGroupBits = bits
		if named {
			f.DHGroup = group.Name
		}
	})
	desc = fmt.Sprintf("%s with %s (%s)", desc, tlsprobe.SuiteName(ff.Hello.Suite), v.Key())
	if bits >= 2048 {
		c.vuln("weak-dh", NotVulnerable, time.Since(start))
		return
	}
	c.vuln("weak-dh", Vulnerable, time.Since(start))
	f := newFinding("weak-dh", desc)
	switch {
	case bits <= 512:
		f = f.withSeverity(Critical)
		f.Evidence += ": export-size, broken in minutes"
	case named:
		f.Evidence += ": a shared prime, the Logjam common-prime case (one precomputation breaks every server using it)"
	}
	c.add(f)
}
