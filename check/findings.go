package check

import (
	"fmt"
	"sort"
	"strings"
)

// Severity orders findings; the zero value is Info.
type Severity int

// Severities, lowest first.
const (
	Info Severity = iota
	Low
	Medium
	High
	Critical
)

var severityNames = []string{"info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < 0 || int(s) >= len(severityNames) {
		return "unknown"
	}
	return severityNames[s]
}

// MarshalText makes severities read as words in JSON.
func (s Severity) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText reads a severity word.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	*s = v
	return err
}

// ParseSeverity reads "low", "medium", "high", "critical" or "info".
func ParseSeverity(w string) (Severity, error) {
	for i, n := range severityNames {
		if strings.EqualFold(w, n) {
			return Severity(i), nil
		}
	}
	return 0, fmt.Errorf("unknown severity %q (want info, low, medium, high or critical)", w)
}

// Finding is one problem found, with the evidence that shows it.
type Finding struct {
	ID         string   `json:"id"`
	Severity   Severity `json:"severity"`
	Title      string   `json:"title"`
	Evidence   string   `json:"evidence"`
	Fix        string   `json:"fix"`
	References []string `json:"references,omitempty"`
}

// kind is the fixed part of a finding: everything but the evidence.
type kind struct {
	severity Severity
	title    string
	fix      string
	refs     []string
}

// Catalogue of finding ids. An id's meaning never changes within a report
// schema version; docs/check.md lists them.
var catalogue = map[string]kind{
	"starttls-not-offered": {Critical, "STARTTLS is not offered",
		"Enable TLS on the server (Postfix: smtpd_tls_security_level=may and a certificate; Dovecot: ssl = yes).",
		[]string{"RFC 3207", "RFC 2595", "RFC 8314"}},
	"starttls-refused": {Critical, "STARTTLS is advertised but refused",
		"Check the server's certificate and key configuration; a 454/NO/-ERR answer usually means TLS failed to initialise.",
		[]string{"RFC 3207 §4", "RFC 2595"}},
	"handshake-failed": {High, "the TLS handshake fails with a modern client",
		"Offer TLS 1.2 or 1.3 with ECDHE and AES-GCM or ChaCha20-Poly1305 suites.",
		[]string{"RFC 9325"}},
	"command-injection": {Critical, "commands pipelined before TLS are executed inside TLS",
		"Upgrade the server: after STARTTLS it must discard buffered plaintext (Postfix fixed this in 2.8.0 / 2.7.3).",
		[]string{"CVE-2011-0411", "RFC 3207 §4.2", "USENIX Security 2021 \"Why TLS is better without STARTTLS\""}},
	"response-injection": {High, "the server sends data after its STARTTLS go-ahead, before TLS",
		"Fix the server (or a middlebox in front of it) so nothing follows the go-ahead in plaintext.",
		[]string{"USENIX Security 2021 \"Why TLS is better without STARTTLS\"", "CVE-2021-23222"}},
	"auth-before-tls": {Medium, "authentication is advertised before TLS",
		"Advertise AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only=yes; Dovecot: disable_plaintext_auth=yes).",
		[]string{"RFC 3207 §4", "RFC 2595 §3.2", "RFC 8314 §3"}},
	"plaintext-login": {High, "plaintext login is allowed before TLS",
		"Refuse logins before TLS with a TLS-required answer (IMAP: LOGINDISABLED and NO [PRIVACYREQUIRED]; POP3: -ERR to USER; SMTP: 530 5.7.0; NNTP: 483; Dovecot: disable_plaintext_auth=yes; Postfix: smtpd_tls_auth_only=yes).",
		[]string{"RFC 2595 §3.2", "RFC 3207 §4", "RFC 4642 §2.2.2", "RFC 5804 §2.1", "RFC 8314"}},
	"plaintext-mail-accepted": {High, "mail is accepted before TLS",
		"On submission require TLS before MAIL (Postfix: -o smtpd_tls_security_level=encrypt on the submission service). On port 25 plaintext is opportunistic by design (info only).",
		[]string{"RFC 8314 §3.3", "RFC 3207 §4"}},
	"starttls-argument-accepted": {Low, "STARTTLS with an argument is accepted",
		"STARTTLS takes no parameters: answer 501 to \"STARTTLS <anything>\" (the server parses commands loosely).",
		[]string{"RFC 3207 §4"}},
	"sslv3-enabled": {Critical, "SSLv3 is accepted",
		"Disable SSLv3 (Postfix: smtpd_tls_protocols = >=TLSv1.2; Dovecot: ssl_min_protocol = TLSv1.2).",
		[]string{"RFC 7568", "CVE-2014-3566 (POODLE)"}},
	"tls1.0-enabled": {Medium, "TLS 1.0 is accepted",
		"Require TLS 1.2 or newer.", []string{"RFC 8996"}},
	"tls1.1-enabled": {Medium, "TLS 1.1 is accepted",
		"Require TLS 1.2 or newer.", []string{"RFC 8996"}},
	"tls1.3-missing": {Low, "TLS 1.3 is not offered",
		"Enable TLS 1.3 (OpenSSL 1.1.1 or newer does it by default).", []string{"RFC 8446", "RFC 9325"}},
	"weak-cipher": {High, "weak cipher suites are accepted",
		"Offer only AEAD suites with forward secrecy (ECDHE with AES-GCM or ChaCha20-Poly1305).",
		[]string{"RFC 7465 (RC4)", "RFC 9325", "CVE-2016-2183 (Sweet32)"}},
	"no-forward-secrecy": {Low, "suites without forward secrecy (RSA key exchange) are accepted",
		"Remove TLS_RSA_* suites; keep ECDHE.", []string{"RFC 9325 §4.1"}},
	"cert-untrusted": {High, "the certificate does not chain to a trusted root",
		"Serve a certificate from a public CA (or DANE-EE with TLSA for SMTP) and send the intermediates.",
		[]string{"RFC 5280", "RFC 8461 §4.2"}},
	"cert-name-mismatch": {High, "the certificate is not valid for the server's name",
		"Put the server's name in the certificate's subjectAltName.", []string{"RFC 6125", "RFC 9525"}},
	"cert-expired": {Critical, "the certificate has expired or is not yet valid",
		"Renew the certificate and reload the server.", []string{"RFC 5280 §4.1.2.5"}},
	"cert-expires-soon": {Medium, "the certificate expires within 30 days",
		"Renew the certificate (automate it, e.g. ACME).", nil},
	"cert-weak-key": {High, "the certificate's key is too small",
		"Use RSA 2048 bits or more, or ECDSA P-256 or more.", []string{"NIST SP 800-131A", "RFC 9325"}},
	"cert-weak-signature": {High, "the certificate is signed with SHA-1 or MD5",
		"Reissue the certificate with SHA-256.", []string{"RFC 9155"}},
	"cert-chain-order": {Low, "the served chain is not in issuing order",
		"Serve the leaf first, then each intermediate in order.", []string{"RFC 8446 §4.4.2"}},
	"cert-lint": {Low, "the certificate fails a certificate lint",
		"Reissue the certificate so that it meets the CA/Browser Forum and RFC 5280 rules.", []string{"RFC 5280", "CA/B Forum BRs"}},
	"starttls-after-tls": {Medium, "STARTTLS is advertised or accepted again inside TLS",
		"The server must not offer or accept STARTTLS once TLS is active.", []string{"RFC 3207 §4.2", "RFC 2595 §3.1"}},
	"ftp-prot-before-pbsz": {Info, "FTP accepts PROT before PBSZ",
		"Answer PROT with 503 until PBSZ 0 has been given; the order is part of the protocol, and a server lax here may be lax elsewhere.",
		[]string{"RFC 4217 §9", "RFC 2228"}},
	"ftp-ccc-accepted": {Low, "FTP accepts CCC: the control channel can drop back to plaintext",
		"Refuse CCC (Clear Command Channel) by policy, e.g. 534; after it every command, including later logins, travels in the clear where it can be read and injected.",
		[]string{"RFC 4217 §6", "RFC 2228"}},
	"starttls-not-required": {Low, "XMPP STARTTLS is offered but not required",
		"Make TLS mandatory on client streams, so that the features carry <required/> (Prosody: c2s_require_encryption = true; ejabberd: starttls_required: true).",
		[]string{"RFC 6120 §5.3.1", "RFC 6120 §5.4.1"}},
	"state-not-reset": {Medium, "the SMTP session state survives STARTTLS",
		"After TLS the server must forget the pre-TLS EHLO and answer MAIL with 503 until a new EHLO.",
		[]string{"RFC 3207 §4.2"}},
	"probe-error": {Info, "a probe could not complete",
		"Re-run with a longer --timeout; the other results stand.", nil},
}

// FindingIDs lists every id the checker can report, sorted.
func FindingIDs() []string {
	ids := make([]string, 0, len(catalogue))
	for id := range catalogue {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

// newFinding builds a finding from the catalogue.
func newFinding(id, evidence string) Finding {
	k, ok := catalogue[id]
	if !ok {
		panic("check: finding id not in catalogue: " + id)
	}
	return Finding{ID: id, Severity: k.severity, Title: k.title, Evidence: evidence, Fix: k.fix, References: k.refs}
}

// withSeverity overrides the catalogue severity where the evidence makes it
// worse or milder (e.g. RC4 versus CBC).
func (f Finding) withSeverity(s Severity) Finding { f.Severity = s; return f }
