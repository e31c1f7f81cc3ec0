package check

import (
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// Each finding id is produced against a server that really has the flaw,
// and absent against the same server without it (TestCleanServers covers
// absence on the library's own correct servers).

func TestDialogueFindings(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	cases := []struct {
		id    string
		flaw  flaws
		grade string
	}{
		{"starttls-not-offered", flaws{noStartTLS: true}, "F"},
		{"starttls-refused", flaws{refuse: "454 4.7.0 TLS not available due to local problem"}, "F"},
		{"response-injection", flaws{injectAfterGo: "250-INJECTED\r\n250 AUTH PLAIN\r\n"}, "F"},
		{"command-injection", flaws{executePipelined: true}, "F"},
		{"starttls-after-tls", flaws{startTLSAfterTLS: true}, ""},
		{"state-not-reset", flaws{keepStateAfterTLS: true}, ""},
		{"auth-before-tls", flaws{authBeforeTLS: true}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			t.Parallel()
			bad := checkAddr(t, starttls.SMTP, startFlawedSMTP(t, tc.flaw, pki.server()), pki.ca.Pool())
			requireFinding(t, bad, tc.id, true)
			if tc.grade != "" && bad.Grade != tc.grade {
				t.Errorf("grade %s, want %s (findings %v)", bad.Grade, tc.grade, ids(bad))
			}
			for _, f := range bad.Findings {
				if f.ID == tc.id && (f.Evidence == "" || f.Fix == "" || f.Title == "") {
					t.Errorf("finding lacks evidence, title or fix: %+v", f)
				}
			}
			good := checkAddr(t, starttls.SMTP, startFlawedSMTP(t, flaws{}, pki.server()), pki.ca.Pool())
			requireFinding(t, good, tc.id, false)
		})
	}
}

func TestCommandInjectionEvidence(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	r := checkAddr(t, starttls.SMTP, startFlawedSMTP(t, flaws{executePipelined: true}, pki.server()), pki.ca.Pool(), func(o *Options) { o.Depth = Quick })
	for _, f := range r.Findings {
		if f.ID == "command-injection" {
			if !strings.Contains(f.Evidence, "RSET") || !strings.Contains(f.Evidence, "250") || f.Severity != Critical {
				t.Errorf("evidence should show the probe and the answer: %+v", f)
			}
			return
		}
	}
	t.Fatalf("no command-injection finding in a quick check: %v (%v)", ids(r), r.StartTLS.Probes)
}

func TestSSLv3(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	r := checkAddr(t, starttls.SMTP, startFlawedSMTP(t, flaws{sslv3Only: true}, pki.server()), pki.ca.Pool())
	requireFinding(t, r, "sslv3-enabled", true)
	requireFinding(t, r, "handshake-failed", true) // a modern client cannot talk to it
	if !r.TLS.Versions["sslv3"] || r.TLS.Versions["tls1.2"] || r.Grade != "F" {
		t.Errorf("versions %v grade %s", r.TLS.Versions, r.Grade)
	}
	good := checkAddr(t, starttls.SMTP, startFlawedSMTP(t, flaws{}, pki.server()), pki.ca.Pool())
	requireFinding(t, good, "sslv3-enabled", false)
}

// TestPlaintextLogin: the library's server under the Optional policy hands
// a pre-TLS login to the application, which checks the credentials (a
// real misconfiguration); under Required it refuses with the protocol's
// TLS-required answer.
func TestPlaintextLogin(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	cases := []struct {
		p     starttls.Protocol
		caps  []string
		reply string // in the evidence of the lax server's finding
	}{
		{starttls.IMAP, []string{"AUTH=PLAIN"}, "NO [AUTHENTICATIONFAILED]"},
		{starttls.POP3, []string{"USER", "SASL PLAIN"}, "+OK send PASS"},
		{starttls.SMTP, []string{"AUTH PLAIN"}, "535 5.7.8"},
		{starttls.Submission, []string{"AUTH PLAIN"}, "535 5.7.8"},
		{starttls.NNTP, []string{"AUTHINFO USER"}, "381 Password required"},
		{starttls.Sieve, []string{"SASL PLAIN"}, `Authentication failed`},
	}
	for _, tc := range cases {
		t.Run(string(tc.p), func(t *testing.T) {
			t.Parallel()
			lax := correctServer(t, tc.p, starttls.ServerConfig{TLSConfig: pki.server(), Policy: starttls.Optional, Capabilities: tc.caps})
			r := checkAddr(t, tc.p, lax, pki.ca.Pool())
			requireFinding(t, r, "plaintext-login", true)
			requireFinding(t, r, "auth-before-tls", true)
			if v := r.StartTLS.Probes["plaintext-login"]; v != "fail" {
				t.Errorf("plaintext-login probe %q, want fail", v)
			}
			sendsPassword := tc.p != starttls.POP3 && tc.p != starttls.NNTP // these stop at the user name
			for _, f := range r.Findings {
				if f.ID == "plaintext-login" && (!strings.Contains(f.Evidence, tc.reply) || f.Severity != High || strings.Contains(f.Evidence, "<random>") != sendsPassword) {
					t.Errorf("evidence should quote the reply %q, hide the password, severity high: %+v", tc.reply, f)
				}
			}
			strict := correctServer(t, tc.p, starttls.ServerConfig{TLSConfig: pki.server(), Capabilities: tc.caps})
			r = checkAddr(t, tc.p, strict, pki.ca.Pool())
			requireFinding(t, r, "plaintext-login", false)
			requireFinding(t, r, "auth-before-tls", false)
			want := "pass"
			if tc.p == starttls.SMTP {
				// Required drops AUTH before TLS, and an MX port without it gets no login attempt.
				want = "n/a (port 25, no AUTH advertised before TLS)"
			}
			if v := r.StartTLS.Probes["plaintext-login"]; v != want {
				t.Errorf("plaintext-login probe on a strict server %q, want %q", v, want)
			}
		})
	}
}

func TestVersionFindings(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	legacy := pki.server()
	legacy.MinVersion, legacy.MaxVersion = tls.VersionTLS10, tls.VersionTLS12
	r := checkAddr(t, starttls.SMTP, correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: legacy}), pki.ca.Pool())
	for _, id := range []string{"tls1.0-enabled", "tls1.1-enabled", "tls1.3-missing"} {
		requireFinding(t, r, id, true)
	}
	requireFinding(t, r, "sslv3-enabled", false)
	if r.Grade != "B" {
		t.Errorf("grade %s, want B (medium findings only): %v", r.Grade, ids(r))
	}
	for _, quick := range []bool{false, true} {
		modern := checkAddr(t, starttls.SMTP, correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: pki.server()}), pki.ca.Pool(), func(o *Options) {
			if quick {
				o.Depth = Quick
			}
		})
		for _, id := range []string{"tls1.0-enabled", "tls1.1-enabled", "tls1.3-missing", "sslv3-enabled"} {
			requireFinding(t, modern, id, false)
		}
	}
}

func TestCipherFindings(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{Key: certs.RSA2048})
	weak := pki.server()
	weak.MaxVersion = tls.VersionTLS12
	weak.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_RC4_128_SHA}
	r := checkAddr(t, starttls.SMTP, correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: weak}), pki.ca.Pool())
	requireFinding(t, r, "weak-cipher", true)
	requireFinding(t, r, "no-forward-secrecy", true)
	got := strings.Join(r.TLS.CipherSuites["tls1.2"], ",")
	for _, want := range []string{"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_RC4_128_SHA"} {
		if !strings.Contains(got, want) {
			t.Errorf("tls1.2 suites %q lack %s", got, want)
		}
	}
	good := pki.server()
	good.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	r = checkAddr(t, starttls.SMTP, correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: good}), pki.ca.Pool())
	requireFinding(t, r, "weak-cipher", false)
	requireFinding(t, r, "no-forward-secrecy", false)
}

func TestCertificateFindings(t *testing.T) {
	now := time.Now()
	cases := []struct {
		id    string
		leaf  certs.LeafOptions
		roots func(p *testPKI) *x509.CertPool
		name  string
	}{
		{"cert-expired", certs.LeafOptions{NotBefore: now.AddDate(-1, 0, 0), NotAfter: now.AddDate(0, 0, -2)}, nil, ""},
		{"cert-expires-soon", certs.LeafOptions{NotAfter: now.AddDate(0, 0, 10)}, nil, ""},
		{"cert-weak-key", certs.LeafOptions{Key: certs.RSA1024}, nil, ""},
		{"cert-name-mismatch", certs.LeafOptions{}, nil, "other.test"},
		{"cert-untrusted", certs.LeafOptions{}, func(*testPKI) *x509.CertPool { return x509.NewCertPool() }, ""},
		// RFC 5280 §4.2.1.3: keyCertSign only for CA certificates.
		{"cert-lint", certs.LeafOptions{Modify: func(c *x509.Certificate) { c.KeyUsage |= x509.KeyUsageCertSign }}, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.id, func(t *testing.T) {
			pki := newPKI(t, tc.leaf)
			roots := pki.ca.Pool()
			if tc.roots != nil {
				roots = tc.roots(pki)
			}
			addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: pki.server()})
			r := checkAddr(t, starttls.SMTP, addr, roots, func(o *Options) {
				o.Depth = Quick
				if tc.name != "" {
					o.ServerName = tc.name
				}
			})
			requireFinding(t, r, tc.id, true)
			// The same server judged with the right roots and name, and a
			// healthy certificate, has no certificate finding.
			okPKI := newPKI(t, certs.LeafOptions{})
			okAddr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: okPKI.server()})
			r = checkAddr(t, starttls.SMTP, okAddr, okPKI.ca.Pool(), func(o *Options) { o.Depth = Quick })
			requireFinding(t, r, tc.id, false)
		})
	}
}

func TestUnreachable(t *testing.T) {
	r := checkAddr(t, starttls.SMTP, "127.0.0.1:1", nil)
	if r.Status != starttls.StatusConnectRefused || r.Grade != "F" {
		t.Errorf("status %s grade %s", r.Status, r.Grade)
	}
}

func TestGradeRule(t *testing.T) {
	mk := func(upgraded bool, sev ...Severity) *Report {
		r := &Report{Depth: Full, StartTLS: StartTLSInfo{Upgraded: upgraded}, TLS: TLSInfo{Versions: map[string]bool{"tls1.2": true, "tls1.3": true}}}
		r.Certificate.Verification.OK = true
		for _, s := range sev {
			r.Findings = append(r.Findings, Finding{Severity: s})
		}
		return r
	}
	cases := []struct {
		r    *Report
		want string
	}{
		{mk(true), "A+"},
		{mk(true, Info), "A+"},
		{mk(true, Low), "A"},
		{mk(true, Medium, Low), "B"},
		{mk(true, High, Medium), "C"},
		{mk(true, High, High), "D"},
		{mk(true, Critical), "F"},
		{mk(false), "F"},
	}
	for i, tc := range cases {
		if g := Grade(tc.r); g != tc.want {
			t.Errorf("case %d: grade %s, want %s", i, g, tc.want)
		}
	}
	noTLS13 := mk(true)
	noTLS13.TLS.Versions["tls1.3"] = false
	if g := Grade(noTLS13); g != "A" {
		t.Errorf("without TLS 1.3 (and no finding) grade %s, want A", g)
	}
}

func TestCatalogueComplete(t *testing.T) {
	required := []string{"starttls-not-offered", "starttls-refused", "command-injection", "response-injection", "auth-before-tls",
		"plaintext-login", "sslv3-enabled", "tls1.0-enabled", "tls1.1-enabled", "tls1.3-missing", "weak-cipher", "cert-untrusted",
		"cert-name-mismatch", "cert-expired", "cert-expires-soon", "cert-weak-key", "starttls-after-tls", "state-not-reset",
		"plaintext-mail-accepted", "starttls-argument-accepted", "starttls-not-required", "ftp-prot-before-pbsz", "ftp-ccc-accepted"}
	for _, id := range required {
		k, ok := catalogue[id]
		if !ok || k.title == "" || k.fix == "" {
			t.Errorf("catalogue lacks %s or its title/fix", id)
		}
	}
}
