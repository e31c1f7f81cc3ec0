package check

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/starttls-go/starttls/internal/certinfo"
	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/active"
)

// The active vulnerability probes: each completes (or deliberately breaks)
// a handshake with tlsprobe's own TLS code, on its own connections.
func init() {
	registerVuln("heartbleed", func(ctx context.Context, c *run) {
		c.activeVuln(ctx, "heartbleed", func(ctx context.Context, d tlsprobe.Dialer, o tlsprobe.Options) (active.VulnResult, string) {
			v, ok := c.legacyVersion()
			if !ok {
				return active.VulnResult{}, "n/a: none of TLS 1.0-1.2 accepted (the probe sends the heartbeat extension in a TLS 1.0-1.2 hello)"
			}
			return verdictOf(active.Heartbleed(ctx, d, o, v))
		})
	})
	registerVuln("ccs-injection", func(ctx context.Context, c *run) {
		c.activeVuln(ctx, "ccs-injection", func(ctx context.Context, d tlsprobe.Dialer, o tlsprobe.Options) (active.VulnResult, string) {
			v, ok := c.legacyVersion()
			if !ok {
				return active.VulnResult{}, "n/a: none of TLS 1.0-1.2 accepted (TLS 1.3 has no such ChangeCipherSpec)"
			}
			return verdictOf(active.CCSInjection(ctx, d, o, v))
		})
	})
	registerVuln("robot", func(ctx context.Context, c *run) {
		c.activeVuln(ctx, "robot", func(ctx context.Context, d tlsprobe.Dialer, o tlsprobe.Options) (active.VulnResult, string) {
			v, suites := c.rsaSuites()
			if len(suites) == 0 {
				return active.VulnResult{}, "n/a: no TLS_RSA_* suite (RSA key exchange) accepted"
			}
			return verdictOf(active.ROBOT(ctx, d, o, v, suites))
		})
	})
	registerVuln("client-renegotiation", func(ctx context.Context, c *run) {
		// The resumption facts need the same minimal TLS 1.2 client: they
		// run alongside, on their own connections.
		var wg sync.WaitGroup
		wg.Go(func() { c.resumptionFacts(ctx) })
		c.activeVuln(ctx, "client-renegotiation", func(ctx context.Context, d tlsprobe.Dialer, o tlsprobe.Options) (active.VulnResult, string) {
			if !c.accepts("tls1.2") {
				return active.VulnResult{}, "n/a: TLS 1.2 not accepted (TLS 1.3 has no renegotiation)"
			}
			if !c.speaks12() {
				return active.VulnResult{}, "n/a: no TLS 1.2 suite the probe client speaks (AES-GCM with ECDHE or RSA key exchange) accepted"
			}
			return verdictOf(active.ClientRenegotiation(ctx, d, o))
		})
		wg.Wait()
	})
}

func (c *run) probeOptions() tlsprobe.Options {
	o := tlsprobe.Options{Timeout: c.o.Timeout}
	if !certinfo.IsIP(c.o.ServerName) {
		o.ServerName = c.o.ServerName
	}
	return o
}

// activeVuln runs one probe and records its verdict, and the finding when
// the server is vulnerable.
func (c *run) activeVuln(ctx context.Context, id string, probe func(context.Context, tlsprobe.Dialer, tlsprobe.Options) (active.VulnResult, string)) {
	start := time.Now()
	res, verdict := probe(ctx, c.dialer(), c.probeOptions())
	c.vuln(id, verdict, time.Since(start))
	if verdict == Vulnerable {
		c.add(newFinding(id, res.Evidence))
	}
}

// verdictOf maps a probe's outcome to a verdict: a refused ClientHello is
// "n/a", any other failure "error".
func verdictOf(res active.VulnResult, err error) (active.VulnResult, string) {
	switch {
	case errors.Is(err, tlsprobe.ErrDeclined):
		return res, "n/a: " + err.Error()
	case err != nil:
		return res, "error: " + err.Error()
	case res.Vulnerable:
		return res, Vulnerable
	}
	return res, NotVulnerable
}

func (c *run) accepts(version string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r.TLS.Versions[version]
}

// speaks12 reports whether the minimal TLS 1.2 client can complete a
// handshake with one of the accepted TLS 1.2 suites (true when the suites
// are unknown: the handshake will tell).
func (c *run) speaks12() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	suites, ok := c.r.TLS.CipherSuites["tls1.2"]
	return !ok || slices.ContainsFunc(suites, active.Speaks12)
}

// legacyVersion is the highest of TLS 1.0-1.2 the server accepts.
func (c *run) legacyVersion() (tlsprobe.Version, bool) {
	for _, v := range []tlsprobe.Version{tlsprobe.TLS12, tlsprobe.TLS11, tlsprobe.TLS10} {
		if c.accepts(v.Key()) {
			return v, true
		}
	}
	return 0, false
}

// rsaSuites picks the highest TLS 1.0-1.2 version with accepted TLS_RSA_*
// suites, and those suites.
func (c *run) rsaSuites() (tlsprobe.Version, []uint16) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, v := range []tlsprobe.Version{tlsprobe.TLS12, tlsprobe.TLS11, tlsprobe.TLS10} {
		var ids []uint16
		for _, name := range c.r.TLS.CipherSuites[v.Key()] {
			if id, ok := tlsprobe.SuiteID(name); ok && strings.HasPrefix(name, "TLS_RSA_") {
				ids = append(ids, id)
			}
		}
		if len(ids) > 0 {
			return v, ids
		}
	}
	return 0, nil
}

// resumptionFacts records session id and ticket resumption (TLS 1.2; for
// a TLS 1.3-only server, ticket resumption alone).
func (c *run) resumptionFacts(ctx context.Context) {
	if !c.accepts("tls1.2") || !c.speaks12() {
		if c.accepts("tls1.3") {
			c.resumptionFacts13(ctx)
		}
		return
	}
	start := time.Now()
	res, err := active.ProbeResumption(ctx, c.dialer(), c.probeOptions())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.Timings.ProbesMS["facts:resumption"] = ms(time.Since(start))
	if err != nil {
		c.r.TLS.ProbeErrors = append(c.r.TLS.ProbeErrors, fmt.Sprintf("resumption: %v", err))
		return
	}
	for _, e := range res.Errors {
		c.r.TLS.ProbeErrors = append(c.r.TLS.ProbeErrors, "resumption: "+e)
	}
	if c.r.TLS.Facts == nil {
		c.r.TLS.Facts = &TLSFacts{}
	}
	f := c.r.TLS.Facts
	f.SessionIDIssued, f.ResumptionID, f.ResumptionTicket = res.SessionIDIssued, res.ResumedByID, res.ResumedByTicket
	if res.TicketLifetimeS != nil {
		life := int(*res.TicketLifetimeS)
		f.TicketLifetimeS = &life
	}
}

func (c *run) resumptionFacts13(ctx context.Context) {
	start := time.Now()
	_, resumed, err := active.ProbeResumption13(ctx, c.dialer(), c.probeOptions())
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.Timings.ProbesMS["facts:resumption"] = ms(time.Since(start))
	if err != nil {
		c.r.TLS.ProbeErrors = append(c.r.TLS.ProbeErrors, fmt.Sprintf("tls1.3 resumption: %v", err))
		return
	}
	if c.r.TLS.Facts == nil {
		c.r.TLS.Facts = &TLSFacts{}
	}
	c.r.TLS.Facts.ResumptionTicket = &resumed
}
