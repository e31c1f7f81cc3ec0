package check

import (
	"context"
	"crypto/tls"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/tlsprobe"
)

// passiveIDs are this file's probes.
var passiveIDs = []string{"no-secure-renegotiation", "no-fallback-scsv", "tls-compression", "sslv2-enabled",
	"export-cipher", "sweet32", "rc4", "cbc-only-tls10", "lucky13"}

// TestVulnPassiveGoServer is the negative of every passive probe against
// crypto/tls with its defaults, through a whole full check: every
// registered probe must leave a verdict.
func TestVulnPassiveGoServer(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: pki.server()})
	r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool())
	if r.Status != starttls.StatusSuccess {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	vulnMu.Lock()
	for _, p := range vulnProbes {
		if r.TLS.Vulnerabilities[p.id] == "" {
			t.Errorf("probe %s left no verdict", p.id)
		}
	}
	vulnMu.Unlock()
	want := map[string]string{"cbc-only-tls10": "n/a: neither TLS 1.0 nor SSLv3 is accepted", "lucky13": Vulnerable}
	for _, id := range passiveIDs {
		w := want[id]
		if w == "" {
			w = NotVulnerable
		}
		if got := r.TLS.Vulnerabilities[id]; got != w {
			t.Errorf("%s: %q, want %q", id, got, w)
		}
	}
	f := r.TLS.Facts
	if f == nil || f.SecureRenegotiation == nil || !*f.SecureRenegotiation {
		t.Fatalf("facts %+v: secure renegotiation not recorded", f)
	}
	if !slices.Equal(f.ECPointFormats, []string{"uncompressed"}) || len(f.Compression) != 0 {
		t.Errorf("point formats %v, compression %v", f.ECPointFormats, f.Compression)
	}
	if g := r.Grade; g != "A+" {
		t.Errorf("grade %s, findings %v", g, ids(r))
	}
}

// TestVulnPassiveLegacyGoServer: crypto/tls serving RC4, 3DES and CBC in
// TLS 1.0 to 1.2 is the positive of the suite-based probes, and shows the
// grade counting RC4 once (weak-cipher high, rc4 info: C, not D).
func TestVulnPassiveLegacyGoServer(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{Key: certs.RSA2048})
	cfg := pki.server()
	cfg.MinVersion, cfg.MaxVersion = tls.VersionTLS10, tls.VersionTLS12
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA, tls.TLS_RSA_WITH_RC4_128_SHA}
	addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: cfg})
	r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool())
	if r.Status != starttls.StatusSuccess {
		t.Fatalf("status %s: %s", r.Status, r.Error)
	}
	want := map[string]string{"rc4": Vulnerable, "sweet32": Vulnerable, "cbc-only-tls10": Vulnerable, "lucky13": Vulnerable}
	for _, id := range passiveIDs {
		w := want[id]
		if w == "" {
			w = NotVulnerable
		}
		if got := r.TLS.Vulnerabilities[id]; got != w {
			t.Errorf("%s: %q, want %q", id, got, w)
		}
	}
	for _, f := range r.Findings {
		switch f.ID {
		case "rc4", "sweet32":
			if f.Severity != Info || !strings.Contains(f.Evidence, "TLS_RSA_WITH_") {
				t.Errorf("%s: %s %q", f.ID, f.Severity, f.Evidence)
			}
		case "weak-cipher":
			if f.Severity != High {
				t.Errorf("weak-cipher %s, want high (RC4)", f.Severity)
			}
		case "cbc-only-tls10":
			if !strings.Contains(f.Evidence, "tls1.0 TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA") {
				t.Errorf("cbc-only-tls10 evidence %q", f.Evidence)
			}
		}
	}
	if g := r.Grade; g != "C" {
		t.Errorf("grade %s, want C (one high: weak-cipher); findings %v", g, ids(r))
	}
}

// opensslServer starts `openssl s_server` with args on a free loopback
// port; it is killed when the test ends.
func opensslServer(t *testing.T, leaf *certs.Leaf, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile, err := leaf.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	return peer.SServer(t, dir, "s_server", certFile, keyFile, append([]string{"-quiet"}, args...)...)
}

// TestVulnPassiveOpenSSL runs the hello-sending probes against OpenSSL:
// several versions (the fallback SCSV negative needs a lower one),
// compression asked for with -comp (Debian's OpenSSL has no zlib, so it
// still chooses null), SSLv2 never.
func TestVulnPassiveOpenSSL(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{Key: certs.RSA2048})
	for _, tc := range []struct {
		name     string
		args     []string
		versions []string
	}{
		{"tls1.0-1.2", []string{"-no_tls1_3", "-comp", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA:@SECLEVEL=0"}, tls10to12},
		{"tls1.2-1.3", []string{"-comp"}, []string{"tls1.2", "tls1.3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := opensslServer(t, pki.leaf, tc.args...)
			c := probeRun(t, addr, nil, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			vs, err := tlsprobe.Versions(ctx, c.dialer(), c.vulnOptions())
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, v := range tlsprobe.AllVersions {
				c.r.TLS.Versions[v.Key()] = vs[v]
				if vs[v] {
					got = append(got, v.Key())
				}
			}
			if !slices.Equal(got, tc.versions) {
				t.Fatalf("openssl accepts %v, want %v", got, tc.versions)
			}
			for _, id := range []string{"no-secure-renegotiation", "no-fallback-scsv", "tls-compression", "sslv2-enabled"} {
				v, f := runProbe(t, c, id)
				if v != NotVulnerable || f != nil {
					t.Errorf("%s: %q %+v", id, v, f)
				}
			}
			if s := c.r.TLS.Facts.SecureRenegotiation; s == nil || !*s {
				t.Errorf("secure renegotiation %v", s)
			}
		})
	}
}
