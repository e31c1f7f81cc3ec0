package check

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/starttls-go/starttls/tlsprobe"
)

// Severity is counted once. weak-cipher is the roll-up of every weak
// suite the enumeration found, at the worst one's severity; rc4, sweet32
// and export-cipher name the attack. When every suite a specific finding
// names is already in weak-cipher, the specific finding is Info, so that
// the grade does not punish one suite twice (rc4 and weak-cipher both high
// would make a D of a C). A specific finding keeps its catalogue severity
// for suites weak-cipher never saw: export suites outside the
// enumeration's pool.
func rolledUp(id string, suites []string) Severity {
	for _, s := range suites {
		if sev, _ := weakness(s); sev == Info {
			return catalogue[id].severity
		}
	}
	return Info
}

// maxEvidenceSuites bounds the suites named in one finding's evidence.
const maxEvidenceSuites = 12

func listSuites(hits []string) string {
	if len(hits) <= maxEvidenceSuites {
		return strings.Join(hits, ", ")
	}
	return strings.Join(hits[:maxEvidenceSuites], ", ") + fmt.Sprintf(" and %d more", len(hits)-maxEvidenceSuites)
}

// enumerated returns, for the accepted versions among keys, the suites
// the enumeration found that match: "tls1.0 TLS_RSA_WITH_RC4_128_SHA";
// the bare suite names; the versions whose suites are unknown (accepted
// with no suite list, or never probed); and whether any of keys was
// accepted or unknown.
func (c *run) enumerated(keys []string, match func(string) bool) (hits, names, unlisted []string, seen bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		on, probed := c.r.TLS.Versions[k]
		if !probed {
			seen = true
			unlisted = append(unlisted, k+" (version not probed)")
			continue
		}
		if !on {
			continue
		}
		seen = true
		suites := c.r.TLS.CipherSuites[k]
		if len(suites) == 0 {
			unlisted = append(unlisted, k)
		}
		for _, s := range suites {
			if match(s) {
				hits = append(hits, k+" "+s)
				names = append(names, s)
			}
		}
	}
	return hits, names, unlisted, seen
}

// suiteVuln judges the enumerated suites of the versions in keys: no
// connection of its own.
func (c *run) suiteVuln(id string, keys []string, match func(string) bool) {
	start := time.Now()
	hits, names, unlisted, seen := c.enumerated(keys, match)
	switch {
	case !seen && slices.Equal(keys, beastKeys):
		c.vuln(id, "n/a: neither TLS 1.0 nor SSLv3 is accepted", time.Since(start))
	case !seen:
		_, na := c.highestLegacy()
		c.vuln(id, na, time.Since(start))
	case len(hits) > 0:
		sev := rolledUp(id, names)
		ev := "accepted: " + listSuites(hits)
		if sev == Info && catalogue[id].severity > Info {
			ev += " (severity counted in weak-cipher)"
		}
		c.conclude(id, start, Vulnerable, ev, sev)
	case len(unlisted) > 0:
		c.vuln(id, "error: the cipher suites of "+strings.Join(unlisted, ", ")+" were not enumerated", time.Since(start))
	default:
		c.vuln(id, NotVulnerable, time.Since(start))
	}
}

func isExport(name string) bool { return strings.Contains(name, "EXPORT") }

// exportCiphers judges the enumerated suites and, when they hold no export
// suite, offers each accepted version below 1.3 the export suites the
// enumeration's pool lacks: one hello per version.
func (c *run) exportCiphers(ctx context.Context) {
	const id = "export-cipher"
	start := time.Now()
	hits, names, unlisted, seen := c.enumerated(legacyKeys, isExport)
	if !seen {
		_, na := c.highestLegacy()
		c.vuln(id, na, time.Since(start))
		return
	}
	if len(hits) > 0 {
		c.conclude(id, start, Vulnerable, "accepted: "+listSuites(hits)+" (severity counted in weak-cipher)", rolledUp(id, names))
		return
	}
	var extra []uint16
	for _, s := range tlsprobe.ExportSuites() {
		if !tlsprobe.InEnumeration(s.ID) {
			extra = append(extra, s.ID)
		}
	}
	var errs []string
	for _, v := range c.acceptedVersions() {
		if v >= tlsprobe.TLS13 {
			continue
		}
		ch := tlsprobe.HelloFor(v)
		ch.Suites = extra
		sh, err := tlsprobe.Offer(ctx, c.dialer(), c.vulnOptions(), ch)
		switch {
		case errors.Is(err, tlsprobe.ErrDeclined):
		case err != nil:
			errs = append(errs, fmt.Sprintf("%s: %v", v, err))
		case sh.Version != v:
		case !slices.Contains(extra, sh.Suite):
			errs = append(errs, fmt.Sprintf("%s: the server chose %s, which was not offered", v, tlsprobe.SuiteName(sh.Suite)))
		default:
			hits = append(hits, v.Key()+" "+tlsprobe.ExportSuiteName(sh.Suite))
		}
	}
	switch {
	case len(hits) > 0:
		c.conclude(id, start, Vulnerable, "a hello offering only export suites was answered with "+strings.Join(hits, ", "), catalogue[id].severity)
	case len(unlisted) > 0:
		errs = append(errs, "the cipher suites of "+strings.Join(unlisted, ", ")+" were not enumerated")
		fallthrough
	case len(errs) > 0:
		c.vuln(id, "error: "+strings.Join(errs, "; "), time.Since(start))
	default:
		c.vuln(id, NotVulnerable, time.Since(start))
	}
}
