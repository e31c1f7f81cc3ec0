package check

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/certinfo"
	"github.com/starttls-go/starttls/tlsprobe"
)

// The passive vulnerability probes: each sends one or two hand-built
// hellos (or none, judging the enumerated suites) and never completes a
// handshake, so all are safe against production servers.
func init() {
	registerVuln("no-secure-renegotiation", func(ctx context.Context, c *run) { c.secureRenegotiation(ctx) })
	registerVuln("no-fallback-scsv", func(ctx context.Context, c *run) { c.fallbackSCSV(ctx) })
	registerVuln("tls-compression", func(ctx context.Context, c *run) { c.compression(ctx) })
	registerVuln("sslv2-enabled", func(ctx context.Context, c *run) { c.sslv2(ctx) })
	registerVuln("export-cipher", func(ctx context.Context, c *run) { c.exportCiphers(ctx) })
	registerVuln("sweet32", func(_ context.Context, c *run) { c.suiteVuln("sweet32", legacyKeys, isBlock64) })
	registerVuln("rc4", func(_ context.Context, c *run) { c.suiteVuln("rc4", legacyKeys, isRC4) })
	registerVuln("cbc-only-tls10", func(_ context.Context, c *run) { c.suiteVuln("cbc-only-tls10", beastKeys, isCBC) })
	registerVuln("lucky13", func(_ context.Context, c *run) { c.suiteVuln("lucky13", legacyKeys, isCBC) })
}

// Version keys the suite-based probes look at.
var (
	legacyKeys = []string{"tls1.2", "tls1.1", "tls1.0", "sslv3"}
	beastKeys  = []string{"tls1.0", "sslv3"}
)

func isRC4(name string) bool { return strings.Contains(name, "_RC4_") }

func isCBC(name string) bool { return strings.Contains(name, "_CBC_") }

// isBlock64 matches the 64-bit block ciphers: DES, 3DES, IDEA and RC2.
func isBlock64(name string) bool {
	for _, c := range []string{"_DES_", "_DES40_", "_3DES_", "_IDEA_", "_RC2_"} {
		if strings.Contains(name, c) {
			return true
		}
	}
	return false
}

// vulnOptions are the raw-hello options of the enumeration.
func (c *run) vulnOptions() tlsprobe.Options {
	o := tlsprobe.Options{Timeout: c.o.Timeout, Concurrency: c.o.Concurrency}
	if !certinfo.IsIP(c.o.ServerName) {
		o.ServerName = c.o.ServerName
	}
	return o
}

// noVersion is the verdict of a probe that needs an accepted version when
// there is none: n/a when every version was refused, an error when some
// could not be probed (an answer nobody measured is not a "no").
func (c *run) noVersion() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var missing []string
	for _, v := range tlsprobe.AllVersions {
		if _, ok := c.r.TLS.Versions[v.Key()]; !ok {
			missing = append(missing, v.Key())
		}
	}
	if len(missing) > 0 {
		return "error: no accepted version found, and " + strings.Join(missing, ", ") + " could not be probed"
	}
	return "n/a: no protocol version was accepted"
}

// acceptedVersions lists the versions the enumeration found accepted, lowest first.
func (c *run) acceptedVersions() []tlsprobe.Version {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []tlsprobe.Version
	for _, v := range tlsprobe.AllVersions {
		if c.r.TLS.Versions[v.Key()] {
			out = append(out, v)
		}
	}
	return out
}

// highestLegacy is the highest accepted version below TLS 1.3, or a
// reason why there is none.
func (c *run) highestLegacy() (tlsprobe.Version, string) {
	vs := c.acceptedVersions()
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i] < tlsprobe.TLS13 {
			return vs[i], ""
		}
	}
	if len(vs) == 0 {
		return 0, c.noVersion()
	}
	return 0, "n/a: only TLS 1.3 is accepted"
}

// conclude records a verdict and, when vulnerable, the finding.
func (c *run) conclude(id string, start time.Time, verdict, evidence string, sev Severity) {
	c.vuln(id, verdict, time.Since(start))
	if verdict == Vulnerable {
		c.add(newFinding(id, evidence).withSeverity(sev))
	}
}

// probeErr is the verdict of a hello that gave no usable answer.
func probeErr(what string, err error) string {
	var a tlsprobe.Alert
	if errors.As(err, &a) {
		return fmt.Sprintf("error: %s was refused with %s (%d)", what, tlsprobe.AlertName(a.Description), a.Description)
	}
	return fmt.Sprintf("error: %s: %v", what, err)
}

// secureRenegotiation sends the enumeration's hello for the highest
// version below 1.3 (it carries TLS_EMPTY_RENEGOTIATION_INFO_SCSV); RFC
// 5746 §3.6 obliges a server that supports secure renegotiation to answer
// with an empty renegotiation_info. The same ServerHello gives the EC
// point formats.
func (c *run) secureRenegotiation(ctx context.Context) {
	const id = "no-secure-renegotiation"
	start := time.Now()
	v, na := c.highestLegacy()
	if na != "" {
		c.vuln(id, na, time.Since(start))
		return
	}
	sh, err := tlsprobe.Offer(ctx, c.dialer(), c.vulnOptions(), tlsprobe.HelloFor(v))
	if err == nil && sh.Version != v {
		err = fmt.Errorf("the server chose %s", sh.Version)
	}
	if err != nil {
		c.vuln(id, probeErr("a "+v.String()+" ClientHello", err), time.Since(start))
		return
	}
	data, has := sh.Extension(tlsprobe.ExtRenegotiationInfo)
	secure := has && bytes.Equal(data, []byte{0})
	var formats []string
	if pf, ok := sh.Extension(tlsprobe.ExtECPointFormats); ok {
		if fs, err := tlsprobe.ParseECPointFormats(pf); err == nil {
			for _, f := range fs {
				formats = append(formats, tlsprobe.ECPointFormatName(f))
			}
		} else {
			c.probeError("ec_point_formats: " + err.Error())
		}
	}
	c.withFacts(func(f *TLSFacts) {
		f.SecureRenegotiation = &secure
		if formats != nil {
			f.ECPointFormats = formats
		}
	})
	verdict, evidence := NotVulnerable, ""
	switch {
	case !has:
		verdict = Vulnerable
		evidence = fmt.Sprintf("a %s ClientHello with TLS_EMPTY_RENEGOTIATION_INFO_SCSV got a ServerHello (%s) without renegotiation_info",
			v, tlsprobe.SuiteName(sh.Suite))
	case !secure:
		verdict = Vulnerable
		evidence = fmt.Sprintf("the %s ServerHello's renegotiation_info is %x, not the empty one an initial handshake needs", v, data)
	}
	c.conclude(id, start, verdict, evidence, catalogue[id].severity)
}

// fallbackSCSV offers the second-highest accepted version with
// TLS_FALLBACK_SCSV: a server that supports a higher one must refuse with
// inappropriate_fallback (RFC 7507 §3).
func (c *run) fallbackSCSV(ctx context.Context) {
	const id = "no-fallback-scsv"
	start := time.Now()
	vs := c.acceptedVersions()
	if len(vs) < 2 {
		why := c.noVersion()
		if len(vs) == 1 {
			why = "n/a: only " + vs[0].String() + " is accepted, there is no version to fall back to"
		}
		c.vuln(id, why, time.Since(start))
		return
	}
	top, lower := vs[len(vs)-1], vs[len(vs)-2]
	ch := tlsprobe.HelloFor(lower)
	ch.Suites = append(slices.Clone(ch.Suites), tlsprobe.FallbackSCSV)
	sh, err := tlsprobe.Offer(ctx, c.dialer(), c.vulnOptions(), ch)
	var a tlsprobe.Alert
	switch {
	case err == nil && sh.Version == lower:
		c.conclude(id, start, Vulnerable, fmt.Sprintf("a %s ClientHello with TLS_FALLBACK_SCSV was answered with a ServerHello (%s, %s) although %s is accepted",
			lower, sh.Version, tlsprobe.SuiteName(sh.Suite), top), catalogue[id].severity)
	case err == nil:
		c.vuln(id, fmt.Sprintf("error: a %s ClientHello with TLS_FALLBACK_SCSV got a %s ServerHello", lower, sh.Version), time.Since(start))
	case errors.As(err, &a) && a.Description == tlsprobe.AlertInappropriateFallback:
		c.vuln(id, NotVulnerable, time.Since(start))
	case errors.Is(err, tlsprobe.ErrDeclined) && c.acceptsWithoutSCSV(ctx, lower):
		// Another alert, or a hang-up (Dovecot closes without an alert),
		// where the same hello without the SCSV is accepted: the SCSV is
		// what the server refused, so the downgrade is prevented, if not
		// with the alert RFC 7507 names.
		c.vuln(id, NotVulnerable, time.Since(start))
	default:
		// A refusal that the same hello without the SCSV also gets tells
		// nothing about the SCSV: say what it was.
		c.vuln(id, probeErr("a "+lower.String()+" ClientHello with TLS_FALLBACK_SCSV", err)+" instead of inappropriate_fallback", time.Since(start))
	}
}

// acceptsWithoutSCSV re-sends the downgraded hello without the SCSV: the
// control that tells a refusal of the SCSV from a refusal of the version.
func (c *run) acceptsWithoutSCSV(ctx context.Context, v tlsprobe.Version) bool {
	sh, err := tlsprobe.Offer(ctx, c.dialer(), c.vulnOptions(), tlsprobe.HelloFor(v))
	return err == nil && sh.Version == v
}

// compression offers DEFLATE before null; choosing it makes CRIME possible.
func (c *run) compression(ctx context.Context) {
	const id = "tls-compression"
	start := time.Now()
	v, na := c.highestLegacy()
	if na != "" {
		c.vuln(id, na, time.Since(start))
		return
	}
	ch := tlsprobe.HelloFor(v)
	ch.Compression = []uint8{tlsprobe.CompressionDeflate}
	sh, err := tlsprobe.Offer(ctx, c.dialer(), c.vulnOptions(), ch)
	switch {
	case err != nil:
		c.vuln(id, probeErr("a "+v.String()+" ClientHello offering DEFLATE", err), time.Since(start))
	case sh.Compression == 0:
		c.vuln(id, NotVulnerable, time.Since(start))
	case sh.Compression == tlsprobe.CompressionDeflate:
		c.withFacts(func(f *TLSFacts) { f.Compression = []string{tlsprobe.CompressionName(sh.Compression)} })
		c.conclude(id, start, Vulnerable, fmt.Sprintf("a %s ClientHello offering DEFLATE and null compression was answered with DEFLATE (%s, %s)",
			v, sh.Version, tlsprobe.SuiteName(sh.Suite)), catalogue[id].severity)
	default:
		c.vuln(id, fmt.Sprintf("error: the server chose compression method %d, which was not offered", sh.Compression), time.Since(start))
	}
}

// sslv2 sends an SSLv2 CLIENT-HELLO; any SERVER-HELLO means SSLv2 is
// enabled, which DROWN needs even with no cipher in common.
func (c *run) sslv2(ctx context.Context) {
	const id = "sslv2-enabled"
	start := time.Now()
	sh, err := tlsprobe.OfferSSLv2(ctx, c.dialer(), c.vulnOptions())
	switch {
	case errors.Is(err, tlsprobe.ErrDeclined), errors.Is(err, tlsprobe.ErrSSLv2Error):
		c.vuln(id, NotVulnerable, time.Since(start))
	case err != nil:
		c.vuln(id, "error: an SSLv2 CLIENT-HELLO: "+err.Error(), time.Since(start))
	default:
		names := make([]string, 0, len(sh.Ciphers))
		for _, ck := range sh.Ciphers {
			names = append(names, tlsprobe.SSLv2CipherName(ck))
		}
		ciphers := "no cipher kinds"
		if len(names) > 0 {
			ciphers = "cipher kinds " + strings.Join(names, ", ")
		}
		c.conclude(id, start, Vulnerable, fmt.Sprintf("an SSLv2 CLIENT-HELLO was answered with an SSLv2 SERVER-HELLO listing %s and a %d-byte certificate",
			ciphers, sh.CertificateSize), catalogue[id].severity)
	}
}
