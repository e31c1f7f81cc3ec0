package check

import (
	"context"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/certinfo"
	"github.com/starttls-go/starttls/tlsprobe"
)

// tlsProbes enumerates versions (quick) or versions, suites and groups (full)
// with raw ClientHellos sent after the plaintext dialogue.
func (c *run) tlsProbes(ctx context.Context) {
	o := tlsprobe.Options{Timeout: c.o.Timeout, Concurrency: c.o.Concurrency}
	if !certinfo.IsIP(c.o.ServerName) {
		o.ServerName = c.o.ServerName
	}
	t := &c.r.TLS
	if c.o.Depth == Quick {
		vs, err := tlsprobe.Versions(ctx, c.dialer(), o)
		if err != nil {
			c.probeError(fmt.Sprintf("versions: %v", err))
		}
		for v, ok := range vs {
			t.Versions[v.Key()] = ok
		}
	} else {
		res, err := tlsprobe.Probe(ctx, c.dialer(), o)
		if err != nil {
			c.probeError(fmt.Sprintf("tls: %v", err))
		}
		if res != nil {
			for k, v := range res.Versions {
				t.Versions[k] = v
			}
			for k, v := range res.Suites {
				t.CipherSuites[k] = v
			}
			t.ServerPreference = res.ServerOrder
			t.Groups = append(t.Groups[:0], res.Groups...)
			for _, e := range res.Errors {
				c.probeError(e)
			}
		}
	}
	c.versionFindings()
	c.suiteFindings()
	if c.o.Depth == Full {
		c.vulnerabilityProbes(ctx)
	}
}

func (c *run) probeError(e string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.r.TLS.ProbeErrors = append(c.r.TLS.ProbeErrors, e)
}

func (c *run) versionFindings() {
	v := c.r.TLS.Versions
	if len(v) == 0 {
		return
	}
	for _, id := range []struct{ key, finding string }{{"sslv3", "sslv3-enabled"}, {"tls1.0", "tls1.0-enabled"}, {"tls1.1", "tls1.1-enabled"}} {
		if v[id.key] {
			c.add(newFinding(id.finding, fmt.Sprintf("a ClientHello offering only %s was answered with a ServerHello", id.key)))
		}
	}
	if on, probed := v["tls1.3"]; probed && !on {
		c.add(newFinding("tls1.3-missing", "a ClientHello offering only TLS 1.3 was refused"))
	}
}

// weakness classifies a suite by its IANA name: the severity of its worst
// property and why, or Info when it is fine.
func weakness(name string) (Severity, string) {
	n := strings.ToUpper(name)
	switch {
	case strings.Contains(n, "_NULL_") || strings.HasSuffix(n, "_NULL"):
		return Critical, "no encryption"
	case strings.Contains(n, "EXPORT"):
		return Critical, "export-grade"
	case strings.Contains(n, "_ANON_"):
		// High, not critical: Postfix enables these on purpose for opportunistic
		// SMTP, where an unauthenticated peer is the norm; a client that
		// verifies certificates never offers them.
		return High, "anonymous (no server authentication)"
	case strings.Contains(n, "RC4"):
		return High, "RC4"
	case strings.Contains(n, "_DES_") && !strings.Contains(n, "DES_EDE"), strings.Contains(n, "DES40"):
		return High, "single DES"
	case strings.Contains(n, "MD5"):
		return High, "MD5"
	case strings.Contains(n, "3DES") || strings.Contains(n, "DES_EDE"):
		return Medium, "3DES (Sweet32)"
	case strings.Contains(n, "IDEA") || strings.Contains(n, "RC2") || strings.Contains(n, "SEED"):
		return Medium, "obsolete cipher"
	}
	return Info, ""
}

func (c *run) suiteFindings() {
	worst := Info
	var weak, noFS []string
	for _, ver := range []string{"tls1.2", "tls1.1", "tls1.0", "sslv3"} {
		for _, s := range c.r.TLS.CipherSuites[ver] {
			if sev, why := weakness(s); sev > Info {
				weak = append(weak, fmt.Sprintf("%s %s (%s)", ver, s, why))
				worst = max(worst, sev)
			}
			if strings.HasPrefix(s, "TLS_RSA_") {
				noFS = append(noFS, ver+" "+s)
			}
		}
	}
	if len(weak) > 0 {
		c.add(newFinding("weak-cipher", strings.Join(weak, ", ")).withSeverity(worst))
	}
	if len(noFS) > 0 {
		c.add(newFinding("no-forward-secrecy", strings.Join(noFS, ", ")))
	}
}
