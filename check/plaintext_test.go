package check

import (
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	imapwire "github.com/starttls-go/starttls/internal/proto/imap"
)

// The reply classes of the plaintext-login probe, as real servers word them.
func TestLoginReplyClasses(t *testing.T) {
	imap := []struct {
		line     string
		disabled bool
		want     int
	}{
		{"a NO [PRIVACYREQUIRED] Plaintext authentication disallowed on non-secure (SSL/TLS) connections.", false, loginRefused}, // Dovecot
		{"a NO [AUTHENTICATIONFAILED] Authentication failed.", true, loginProcessed},                                             // a LOGINDISABLED lie
		{"a NO [AUTHENTICATIONFAILED] Authentication failed.", false, loginProcessed},
		{"a NO [CONTACTADMIN] account locked", false, loginProcessed},
		{"a OK [CAPABILITY IMAP4rev1] Logged in", false, loginProcessed},
		{"a BAD [PRIVACYREQUIRED] Command not available before STARTTLS", false, loginRefused},
		{"a NO Login only available under a privacy layer", true, loginRefused}, // RFC 2595 §3.2 with LOGINDISABLED
		{"a NO Login failed", false, loginUndecided},
		{"a NO [ALERT] use TLS", false, loginUndecided},
	}
	for _, tc := range imap {
		r, err := imapwire.ParseResponse(tc.line)
		if err != nil {
			t.Fatal(err)
		}
		if got := judgeIMAPLogin(r, tc.disabled); got != tc.want {
			t.Errorf("IMAP %q (LOGINDISABLED %v): %d, want %d", tc.line, tc.disabled, got, tc.want)
		}
	}
	for code, want := range map[int]int{530: loginRefused, 538: loginRefused, 503: loginRefused, 502: loginRefused, 535: loginProcessed, 235: loginProcessed, 334: loginProcessed, 454: loginUndecided, 501: loginUndecided} {
		if got := judgeSMTPAuth(code); got != want {
			t.Errorf("SMTP %d: %d, want %d", code, got, want)
		}
	}
	sieve := []struct {
		line  string
		mechs []string
		want  int
	}{
		{`NO (ENCRYPT-NEEDED) "Use STARTTLS first"`, []string{"PLAIN"}, loginRefused},
		{`NO "Plaintext authentication disallowed on non-secure (SSL/TLS) connections."`, nil, loginRefused}, // Dovecot, SASL ""
		{`NO "Authentication failed."`, []string{"PLAIN", "LOGIN"}, loginProcessed},
		{`OK "Logged in."`, nil, loginProcessed},
		{`NO (TRANSITION-NEEDED) "change your password"`, nil, loginProcessed},
		{`BAD "no such command"`, []string{"PLAIN"}, loginRefused},
	}
	for _, tc := range sieve {
		if got := judgeSieveAuth(sieveStatus(tc.line), tc.line, tc.mechs); got != tc.want {
			t.Errorf("Sieve %q %v: %d, want %d", tc.line, tc.mechs, got, tc.want)
		}
	}
}

// A server without STARTTLS still gets the plaintext-login probe: a login
// in the clear is all a client can do there.
func TestPlaintextLoginWithoutSTARTTLS(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	r := checkAddr(t, starttls.Submission, startFlawedSMTP(t, flaws{noStartTLS: true, plaintextLogin: true}, pki.server()), pki.ca.Pool())
	requireFinding(t, r, "starttls-not-offered", true)
	requireFinding(t, r, "plaintext-login", true)
	r = checkAddr(t, starttls.Submission, startFlawedSMTP(t, flaws{noStartTLS: true}, pki.server()), pki.ca.Pool())
	requireFinding(t, r, "starttls-not-offered", true)
	requireFinding(t, r, "plaintext-login", false)
	if v := r.StartTLS.Probes["plaintext-login"]; v != "pass" {
		t.Errorf("plaintext-login probe %q", v)
	}
}
