package check

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// The check against real servers in two configurations each: modern (TLS
// 1.2+ only) and legacy (TLS 1.0 and 1.1 on, OpenSSL security level 0 so
// that RSA key exchange and SHA-1 suites are accepted).

// legacyPostfix re-enables old protocols and every suite OpenSSL has.
var legacyPostfix = []string{
	"smtpd_tls_protocols = >=TLSv1",
	"smtpd_tls_mandatory_protocols = >=TLSv1",
	"smtpd_tls_ciphers = low",
	"smtpd_tls_mandatory_ciphers = low",
	"tls_low_cipherlist = ALL:@SECLEVEL=0",
}

var legacyDovecot = []string{
	"ssl_min_protocol = TLSv1",
	"ssl_cipher_list = ALL:@SECLEVEL=0",
}

func checkPeer(t *testing.T, p starttls.Protocol, addr string, pki *peer.PKI) *Report {
	t.Helper()
	return checkPeerNamed(t, p, addr, pki, "mail.test")
}

func checkPeerNamed(t *testing.T, p starttls.Protocol, addr string, pki *peer.PKI, name string) *Report {
	t.Helper()
	tg, err := starttls.ParseTarget(addr, p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r := Run(ctx, tg, Options{Roots: pki.CA.Pool(), ServerName: name, Timeout: 10 * time.Second})
	if r.Status != starttls.StatusSuccess {
		t.Fatalf("%s: status %s: %s", tg, r.Status, r.Error)
	}
	if len(r.TLS.ProbeErrors) > 0 {
		t.Errorf("%s: probe errors: %v", tg, r.TLS.ProbeErrors)
	}
	t.Logf("%s: grade %s, versions %v, findings %v, %.0f ms %v", tg, r.Grade, r.TLS.Versions, ids(r), r.Timings.TotalMS, r.Timings.ProbesMS)
	for _, f := range r.Findings {
		if f.ID == "weak-cipher" {
			t.Logf("  %s: %s", f.ID, f.Evidence)
		}
	}
	return r
}

func assertModern(t *testing.T, r *Report) {
	t.Helper()
	v := r.TLS.Versions
	if !v["tls1.2"] || !v["tls1.3"] || v["tls1.1"] || v["tls1.0"] || v["sslv3"] {
		t.Errorf("versions %v, want only TLS 1.2 and 1.3", v)
	}
	for _, id := range []string{"tls1.0-enabled", "tls1.1-enabled", "sslv3-enabled", "command-injection", "response-injection",
		"cert-untrusted", "cert-name-mismatch", "starttls-after-tls", "state-not-reset", "plaintext-login", "auth-before-tls"} {
		requireFinding(t, r, id, false)
	}
	if !slices.Contains(r.TLS.CipherSuites["tls1.3"], "TLS_AES_256_GCM_SHA384") {
		t.Errorf("tls1.3 suites %v lack TLS_AES_256_GCM_SHA384", r.TLS.CipherSuites["tls1.3"])
	}
	if !slices.Contains(r.TLS.Groups, "x25519") {
		t.Errorf("groups %v lack x25519", r.TLS.Groups)
	}
	if inj := r.StartTLS.Probes["command-injection"]; !r.StartTLS.Implicit && !decidedPass(inj) {
		t.Errorf("command-injection probe %q: want a pass decided without waiting for silence", inj)
	}
}

// decidedPass is a safe verdict reached without waiting out
// injectionWait: the server answered the probe's own command first, or
// cut the connection at the upgrade.
func decidedPass(verdict string) bool {
	// A variant's verdict follows the first after "; ".
	verdict, _, _ = strings.Cut(verdict, "; ")
	switch verdict {
	case "pass", "pass (no reply inside TLS)", "pass (one reply inside TLS: ours)":
		return false
	}
	return strings.HasPrefix(verdict, "pass (")
}

func assertLegacy(t *testing.T, r *Report) {
	t.Helper()
	v := r.TLS.Versions
	if !v["tls1.0"] || !v["tls1.1"] || !v["tls1.2"] {
		t.Errorf("versions %v, want TLS 1.0, 1.1 and 1.2 accepted", v)
	}
	requireFinding(t, r, "tls1.0-enabled", true)
	requireFinding(t, r, "tls1.1-enabled", true)
	requireFinding(t, r, "no-forward-secrecy", true)
	if !slices.Contains(r.TLS.CipherSuites["tls1.0"], "TLS_RSA_WITH_AES_128_CBC_SHA") {
		t.Errorf("tls1.0 suites %v lack TLS_RSA_WITH_AES_128_CBC_SHA", r.TLS.CipherSuites["tls1.0"])
	}
	if r.Grade == "A" || r.Grade == "A+" {
		t.Errorf("a legacy configuration graded %s", r.Grade)
	}
}

func TestCheckPostfix(t *testing.T) {
	t.Run("modern", func(t *testing.T) {
		pf := peer.StartPostfix(t, peer.PostfixOptions{})
		for _, c := range []struct {
			p    starttls.Protocol
			addr string
		}{{starttls.SMTP, pf.SMTPAddr}, {starttls.Submission, pf.SubmissionAddr}, {starttls.SMTPS, pf.SMTPSAddr}} {
			r := checkPeer(t, c.p, c.addr, pf.PKI)
			assertModern(t, r)
			if c.p != starttls.SMTPS {
				// Without SASL Postfix answers AUTH with 503; 501 to STARTTLS with an argument.
				// Port 25 offers no AUTH before TLS, so it gets no login attempt.
				for _, id := range []string{"plaintext-login", "starttls-argument-accepted"} {
					want := "pass"
					if id == "plaintext-login" && c.p == starttls.SMTP {
						want = "n/a (port 25, no AUTH advertised before TLS)"
					}
					if v := r.StartTLS.Probes[id]; v != want {
						t.Errorf("%s: %s probe %q, want %q", c.p, id, v, want)
					}
				}
			}
			switch c.p {
			case starttls.Submission: // smtpd_tls_security_level=encrypt: 530 to MAIL
				requireFinding(t, r, "plaintext-mail-accepted", false)
				if v := r.StartTLS.Probes["plaintext-mail-accepted"]; v != "pass" {
					t.Errorf("plaintext-mail-accepted probe %q", v)
				}
			case starttls.SMTP: // port 25 is opportunistic: accepted, but only info
				requireFinding(t, r, "plaintext-mail-accepted", true)
				for _, f := range r.Findings {
					if f.ID == "plaintext-mail-accepted" && f.Severity != Info {
						t.Errorf("port 25: %+v", f)
					}
				}
			}
			// Postfix never requires HELO, so the reset cannot be observed.
			if c.p != starttls.SMTPS && (!strings.HasPrefix(r.StartTLS.Probes["state-not-reset"], "n/a") || r.StartTLS.Probes["starttls-after-tls"] != "pass") {
				t.Errorf("%s probes %v", c.p, r.StartTLS.Probes)
			}
		}
	})
	t.Run("submission without TLS required", func(t *testing.T) {
		// A real misconfiguration: a submission service run with the port-25
		// setting smtpd_tls_security_level=may takes MAIL in plaintext.
		pf := peer.StartPostfix(t, peer.PostfixOptions{})
		r := checkPeer(t, starttls.Submission, pf.SMTPAddr, pf.PKI)
		requireFinding(t, r, "plaintext-mail-accepted", true)
		for _, f := range r.Findings {
			if f.ID == "plaintext-mail-accepted" && (f.Severity != High || !strings.Contains(f.Evidence, "250 2.1.0")) {
				t.Errorf("want high with the 250 reply as evidence: %+v", f)
			}
		}
	})
	t.Run("legacy", func(t *testing.T) {
		pf := peer.StartPostfix(t, peer.PostfixOptions{MainCF: legacyPostfix})
		r := checkPeer(t, starttls.SMTP, pf.SMTPAddr, pf.PKI)
		assertLegacy(t, r)
		// Debian's OpenSSL 3 has no 3DES or RC4 suites at all, even at
		// @SECLEVEL=0 ("openssl ciphers 3DES:@SECLEVEL=0": no cipher
		// match); the weak suites it can still offer are the anonymous ones,
		// which Postfix's opportunistic cipher lists include.
		requireFinding(t, r, "weak-cipher", true)
		if !slices.Contains(r.TLS.CipherSuites["tls1.0"], "TLS_ECDH_anon_WITH_AES_128_CBC_SHA") {
			t.Errorf("tls1.0 suites %v lack TLS_ECDH_anon_WITH_AES_128_CBC_SHA", r.TLS.CipherSuites["tls1.0"])
		}
	})
}

func TestCheckDovecot(t *testing.T) {
	t.Run("modern", func(t *testing.T) {
		dc := peer.StartDovecot(t, peer.DovecotOptions{})
		for _, c := range []struct {
			p    starttls.Protocol
			addr string
		}{{starttls.IMAP, dc.IMAPAddr}, {starttls.POP3, dc.POP3Addr}, {starttls.IMAPS, dc.IMAPSAddr}, {starttls.POP3S, dc.POP3SAddr}} {
			r := checkPeer(t, c.p, c.addr, dc.PKI)
			assertModern(t, r)
			// NO [PRIVACYREQUIRED] to LOGIN, -ERR [AUTH] to USER.
			if v := r.StartTLS.Probes["plaintext-login"]; !r.StartTLS.Implicit && v != "pass" {
				t.Errorf("%s: plaintext-login probe %q", c.p, v)
			}
		}
	})
	t.Run("legacy", func(t *testing.T) {
		dc := peer.StartDovecot(t, peer.DovecotOptions{Conf: legacyDovecot})
		assertLegacy(t, checkPeer(t, starttls.IMAP, dc.IMAPAddr, dc.PKI))
	})
	t.Run("plaintext auth allowed", func(t *testing.T) {
		// A real misconfiguration: Dovecot offering LOGIN before TLS.
		dc := peer.StartDovecot(t, peer.DovecotOptions{Sieve: true, Conf: []string{"disable_plaintext_auth = no"}})
		for _, c := range []struct {
			p     starttls.Protocol
			addr  string
			reply string
		}{{starttls.IMAP, dc.IMAPAddr, "a NO [AUTHENTICATIONFAILED]"}, {starttls.POP3, dc.POP3Addr, "+OK"}, {starttls.Sieve, dc.SieveAddr, "NO"}} {
			r := checkPeer(t, c.p, c.addr, dc.PKI)
			requireFinding(t, r, "plaintext-login", true)
			requireFinding(t, r, "auth-before-tls", true)
			// The active probe, not only the capabilities, shows it.
			if v := r.StartTLS.Probes["plaintext-login"]; v != "fail" {
				t.Errorf("%s: plaintext-login probe %q", c.p, v)
			}
			for _, f := range r.Findings {
				if f.ID == "plaintext-login" && !strings.Contains(f.Evidence, c.reply) {
					t.Errorf("%s: evidence %q lacks %q", c.p, f.Evidence, c.reply)
				}
			}
		}
	})
}

// The check across protocols against their real servers: each run
// completes (every TLS probe answers through the protocol's dialogue) and
// the command-injection probe says pass for servers known to be safe.
func TestCheckMoreRealPeers(t *testing.T) {
	cases := []struct {
		name  string
		start func(t *testing.T) (starttls.Protocol, string, *peer.PKI)
	}{
		{"ldap/slapd", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			sd := peer.StartSlapd(t, peer.SlapdOptions{})
			return starttls.LDAP, sd.LDAPAddr, sd.PKI
		}},
		{"ftp/vsftpd", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			v := peer.StartVSFTPD(t)
			return starttls.FTP, v.Addr, v.PKI
		}},
		{"nntp/inn", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			n := peer.StartINN(t)
			return starttls.NNTP, n.Addr, n.PKI
		}},
		{"sieve/dovecot", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			d := peer.StartDovecot(t, peer.DovecotOptions{Sieve: true})
			return starttls.Sieve, d.SieveAddr, d.PKI
		}},
		{"xmpp/prosody", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			p := peer.StartProsody(t, peer.ProsodyOptions{})
			return starttls.XMPP, p.C2SAddr, p.PKI
		}},
		{"postgres/postgresql", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			p := peer.StartPostgres(t, peer.PostgresOptions{})
			return starttls.Postgres, p.Addr, p.PKI
		}},
		{"irc/inspircd", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			i := peer.StartInspIRCd(t, peer.InspIRCdOptions{})
			return starttls.IRC, i.Addr, i.PKI
		}},
		{"http/cups", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			c := peer.StartCUPS(t, peer.CUPSOptions{})
			return starttls.HTTP, c.Addr, c.PKI
		}},
		{"mysql/mariadb", func(t *testing.T) (starttls.Protocol, string, *peer.PKI) {
			m := peer.StartMariaDB(t, peer.MariaDBOptions{})
			return starttls.MySQL, m.Addr, m.PKI
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p, addr, pki := tc.start(t)
			name := map[starttls.Protocol]string{starttls.LDAP: "ldap.test", starttls.Postgres: "db.test", starttls.MySQL: "db.test", starttls.HTTP: "localhost", starttls.IRC: "irc.test"}[p]
			if name == "" {
				name = "mail.test"
			}
			r := checkPeerNamed(t, p, addr, pki, name)
			t.Logf("probes %v", r.StartTLS.Probes)
			for _, f := range r.Findings {
				t.Logf("  %s: %s", f.ID, f.Evidence)
			}
			inj := r.StartTLS.Probes["command-injection"]
			switch {
			case p == starttls.HTTP:
				// CUPS 2.4 answers inside TLS a request pipelined in
				// plaintext behind the Upgrade request (a GET for a missing
				// page gets its 404 inside TLS): the CVE-2011-0411 class, for
				// real. The probe's own OPTIONS gets 400 (Host: starttls-check).
				if inj != "fail" {
					t.Errorf("CUPS: command-injection probe %q, want fail", inj)
				}
				requireFinding(t, r, "command-injection", true)
			case !strings.HasPrefix(inj, "pass"):
				t.Errorf("command-injection probe %q", inj)
			}
			// InspIRCd ignores PING before registration: its pass is silence.
			if _, text := sentinels[p]; text && p != starttls.IRC && !decidedPass(inj) {
				t.Errorf("command-injection probe %q: want a pass decided without waiting for silence", inj)
			}
			if !r.TLS.Versions["tls1.2"] {
				t.Errorf("versions %v", r.TLS.Versions)
			}
			// A second upgrade inside TLS is refused by every one of them
			// (slapd: operationsError; Prosody: <failure/>; INN: 502).
			if v := r.StartTLS.Probes["starttls-after-tls"]; p != starttls.MySQL && v != "pass" {
				t.Errorf("starttls-after-tls probe %q", v)
			}
			requireFinding(t, r, "starttls-after-tls", false)
			requireFinding(t, r, "starttls-not-required", false)
			if p == starttls.FTP {
				// vsftpd 3.0 sets PROT P without PBSZ (info), and wants a
				// login before it answers CCC.
				requireFinding(t, r, "ftp-prot-before-pbsz", true)
				requireFinding(t, r, "ftp-ccc-accepted", false)
			}
			requireFinding(t, r, "cert-untrusted", false)
			requireFinding(t, r, "cert-name-mismatch", false)
			if p == starttls.NNTP || p == starttls.Sieve {
				// INN answers AUTHINFO USER with 483, Dovecot's managesieve
				// refuses AUTHENTICATE "PLAIN" (not offered before TLS).
				if v := r.StartTLS.Probes["plaintext-login"]; v != "pass" {
					t.Errorf("plaintext-login probe %q", v)
				}
				requireFinding(t, r, "plaintext-login", false)
			}
		})
	}
}

// Prosody with c2s_require_encryption = false offers <starttls/> without
// <required/>: starttls-not-required, from a real server configured so.
func TestCheckProsodyOptional(t *testing.T) {
	p := peer.StartProsody(t, peer.ProsodyOptions{Optional: true})
	r := checkPeer(t, starttls.XMPP, p.C2SAddr, p.PKI)
	requireFinding(t, r, "starttls-not-required", true)
	requireFinding(t, r, "starttls-after-tls", false)
}

// MariaDB 10.11 checks a plaintext login's credentials before it applies
// require_secure_transport, so the probe's throwaway user gets "Access
// denied" with the option on or off: inconclusive both times, never a
// finding (the library's server half, which refuses first, passes in
// TestMySQLPlaintextLogin).
func TestCheckMariaDBPlaintextLogin(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"default", nil, "inconclusive: "},
		{"require_secure_transport", []string{"--require-secure-transport=ON"}, "inconclusive: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := peer.StartMariaDB(t, peer.MariaDBOptions{Args: tc.args})
			r := checkPeerNamed(t, starttls.MySQL, m.Addr, m.PKI, "db.test")
			if v := r.StartTLS.Probes["plaintext-login"]; !strings.HasPrefix(v, tc.want) || !strings.Contains(v, "1045") {
				t.Errorf("plaintext-login probe %q, want %q and the 1045", v, tc.want)
			}
			requireFinding(t, r, "plaintext-login", false)
		})
	}
}

// PostgreSQL applies pg_hba before authentication: with "hostnossl ...
// reject" a plaintext StartupMessage is refused at once ("no encryption"),
// with "hostnossl ... trust" it gets past pg_hba (then "role does not
// exist" for the throwaway user): plaintext-login.
func TestCheckPostgresPlaintextLogin(t *testing.T) {
	for _, plain := range []bool{false, true} {
		p := peer.StartPostgres(t, peer.PostgresOptions{AllowPlaintext: plain})
		r := checkPeerNamed(t, starttls.Postgres, p.Addr, p.PKI, "db.test")
		want := map[bool]string{false: "pass", true: "fail"}[plain]
		if v := r.StartTLS.Probes["plaintext-login"]; v != want {
			t.Errorf("AllowPlaintext=%v: plaintext-login probe %q, want %q", plain, v, want)
		}
		requireFinding(t, r, "plaintext-login", plain)
		for _, f := range r.Findings {
			if f.ID == "plaintext-login" {
				t.Logf("%s: %s", f.ID, f.Evidence)
			}
		}
	}
}
