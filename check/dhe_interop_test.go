package check

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// dhePostfix is a legacy Postfix whose only suite is
// DHE-RSA-AES128-GCM-SHA256 with the DH group in paramFile, TLS 1.2 only:
// crypto/tls has no DHE, so no modern Go client completes a handshake.
func dhePostfix(paramFile string) []string {
	return []string{
		"smtpd_tls_protocols = >=TLSv1.2, <=TLSv1.2",
		"smtpd_tls_mandatory_protocols = >=TLSv1.2, <=TLSv1.2",
		"smtpd_tls_ciphers = high",
		"smtpd_tls_mandatory_ciphers = high",
		// SECLEVEL 0: Debian's OpenSSL refuses a 1024-bit group at its default level.
		"tls_high_cipherlist = DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0",
		"smtpd_tls_dh1024_param_file = " + paramFile,
	}
}

// dhParams writes DH parameters made by openssl with args ("{out}" stands
// for the file) to a file the postfix user can read.
func dhParams(t *testing.T, name string, args ...string) string {
	t.Helper()
	bin := peer.Require(t, "openssl")["openssl"]
	dir, err := os.MkdirTemp("", "starttls-dh-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	file := filepath.Join(dir, name)
	for i, a := range args {
		if a == "{out}" {
			args[i] = file
		}
	}
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		t.Fatalf("openssl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	_ = os.Chmod(file, 0o644)
	return file
}

func checkDHEPeer(t *testing.T, pf *peer.Postfix) *Report {
	t.Helper()
	tg, err := starttls.ParseTarget(pf.SMTPAddr, starttls.SMTP)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := Run(ctx, tg, Options{Roots: pf.CA.Pool(), ServerName: "mail.test", Timeout: 10 * time.Second})
	t.Logf("grade %s, status %s, suites %v, findings %v, vulns %v, facts %+v, probe errors %v",
		r.Grade, r.Status, r.TLS.CipherSuites, ids(r), r.TLS.Vulnerabilities, r.TLS.Facts, r.TLS.ProbeErrors)
	// Not the only thing learned any more: the handshake fails, but the
	// chain comes from the first flight and is judged like any other.
	if r.Status != starttls.StatusHandshake || !r.Has("handshake-failed") {
		t.Fatalf("status %s (%s), findings %v", r.Status, r.Error, ids(r))
	}
	if r.TLS.Facts == nil || !r.TLS.Facts.FirstFlight {
		t.Errorf("facts %+v: the chain should come from the first flight", r.TLS.Facts)
	}
	c := r.Certificate
	if len(c.Chain) == 0 || !strings.Contains(c.Chain[0].Subject, "mail.test") || !c.Verification.OK || c.VerifiedName != "mail.test" {
		t.Errorf("certificate from the first flight: %+v", c)
	}
	for _, id := range []string{"cert-untrusted", "cert-name-mismatch"} {
		requireFinding(t, r, id, false)
	}
	if got := r.TLS.CipherSuites["tls1.2"]; len(got) != 1 || got[0] != "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" {
		t.Errorf("tls1.2 suites %v", got)
	}
	return r
}

// A DHE-only Postfix with a 1024-bit group (legacy Postfix and Exim
// set-ups): weak-dh, with the size as evidence. Negative: ffdhe2048.
func TestCheckPostfixDHEOnly(t *testing.T) {
	t.Run("1024-bit group", func(t *testing.T) {
		params := dhParams(t, "dh1024.pem", "dhparam", "-out", "{out}", "1024")
		pf := peer.StartPostfix(t, peer.PostfixOptions{MainCF: dhePostfix(params)})
		r := checkDHEPeer(t, pf)
		if v := r.TLS.Vulnerabilities["weak-dh"]; v != Vulnerable {
			t.Errorf("weak-dh verdict %q", v)
		}
		if f := r.TLS.Facts; f == nil || f.DHGroupBits != 1024 || f.DHGroup != "" {
			t.Errorf("facts %+v: want a 1024-bit group of its own", f)
		}
		requireFinding(t, r, "weak-dh", true)
		for _, f := range r.Findings {
			if f.ID == "weak-dh" && (f.Severity != High || !strings.Contains(f.Evidence, "1024-bit DH group") || !strings.Contains(f.Evidence, "not a well-known prime")) {
				t.Errorf("weak-dh finding %+v", f)
			}
		}
	})
	t.Run("ffdhe2048", func(t *testing.T) {
		params := dhParams(t, "ffdhe2048.pem", "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", "{out}")
		pf := peer.StartPostfix(t, peer.PostfixOptions{MainCF: dhePostfix(params)})
		r := checkDHEPeer(t, pf)
		if v := r.TLS.Vulnerabilities["weak-dh"]; v != NotVulnerable {
			t.Errorf("weak-dh verdict %q", v)
		}
		if f := r.TLS.Facts; f == nil || f.DHGroupBits != 2048 || f.DHGroup != "RFC 7919 ffdhe2048" {
			t.Errorf("facts %+v: want ffdhe2048", f)
		}
		requireFinding(t, r, "weak-dh", false)
	})
}
