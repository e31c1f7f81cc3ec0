package check

import (
	"fmt"
	"maps"
	"slices"
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

	// Outcomes of the main session that are not a TLS session.
	"connect-failed": {High, "the server could not be reached",
		"Check that the service is running and listening on this address and port, and that no firewall drops the connection.", nil},
	"no-greeting": {High, "the server accepted the connection but never greeted",
		"The service is hung or overloaded (or something in front of it accepts and stalls): restart it and check its logs.", nil},
	"timeout": {High, "the server stopped answering part-way through the dialogue or handshake",
		"The service stopped answering mid-dialogue: check its logs and load (and that nothing in front of it holds the connection).", nil},
	"protocol-error": {High, "the server's answer is not the protocol (malformed, over-long or unexpected)",
		"Check that the port serves the protocol named, and that nothing in front of it rewrites the dialogue.", nil},
	"connection-closed": {High, "the server closed the connection during the STARTTLS dialogue",
		"Check the server's logs: it hung up before TLS could start.", nil},

	// TLS vulnerabilities, probed with hand-built ClientHellos.
	"heartbleed": {Critical, "Heartbleed: the server answers a heartbeat with more data than it was sent",
		"Upgrade OpenSSL (1.0.1g or newer) and replace the key and certificate.",
		[]string{"CVE-2014-0160", "RFC 6520"}},
	"ccs-injection": {Critical, "CCS injection: the server accepts ChangeCipherSpec before the key exchange",
		"Upgrade OpenSSL (0.9.8za, 1.0.0m, 1.0.1h or newer).", []string{"CVE-2014-0224"}},
	"robot": {Critical, "ROBOT: the server is a Bleichenbacher padding oracle for RSA key exchange",
		"Disable RSA key exchange (TLS_RSA_* suites) or upgrade the TLS stack.",
		[]string{"CVE-2017-13099", "https://robotattack.org/", "RFC 5246 §7.4.7.1"}},
	"no-secure-renegotiation": {High, "secure renegotiation (RFC 5746) is not supported",
		"Upgrade the TLS stack; every maintained one sends renegotiation_info.",
		[]string{"RFC 5746", "CVE-2009-3555"}},
	"client-renegotiation": {Medium, "client-initiated renegotiation is accepted",
		"Disable client-initiated renegotiation (a denial-of-service lever; OpenSSL: SSL_OP_NO_RENEGOTIATION, Postfix 3.4+ does it by default).",
		[]string{"RFC 5746", "CVE-2011-1473"}},
	"no-fallback-scsv": {Medium, "a downgraded handshake with TLS_FALLBACK_SCSV is not refused",
		"Upgrade the TLS stack so that it answers inappropriate_fallback, or offer only one protocol version.",
		[]string{"RFC 7507"}},
	"tls-compression": {High, "TLS compression is accepted (CRIME)",
		"Disable TLS compression (OpenSSL: SSL_OP_NO_COMPRESSION, the default since 1.1.0).",
		[]string{"CVE-2012-4929"}},
	"weak-dh": {High, "the DHE group is weak or widely shared",
		"Use a 2048-bit or larger group (RFC 7919 ffdhe2048 or more) or drop DHE for ECDHE.",
		[]string{"CVE-2015-4000 (Logjam)", "RFC 7919", "https://weakdh.org/"}},
	"export-cipher": {Critical, "export-grade cipher suites are accepted (FREAK / Logjam)",
		"Remove every EXPORT suite.", []string{"CVE-2015-0204 (FREAK)", "CVE-2015-4000 (Logjam)"}},
	"sslv2-enabled": {Critical, "SSLv2 is accepted (DROWN)",
		"Disable SSLv2 everywhere the key is used.", []string{"CVE-2016-0800", "RFC 6176"}},
	"sweet32": {Medium, "64-bit block ciphers (3DES, IDEA) are accepted (Sweet32)",
		"Remove 3DES and IDEA suites.", []string{"CVE-2016-2183", "CVE-2016-6329"}},
	"rc4": {High, "RC4 suites are accepted",
		"Remove every RC4 suite.", []string{"RFC 7465", "CVE-2013-2566", "CVE-2015-2808"}},
	"cbc-only-tls10": {Info, "TLS 1.0 or older with CBC suites is accepted (BEAST)",
		"Require TLS 1.2 or newer; clients mitigate BEAST with 1/n-1 record splitting.",
		[]string{"CVE-2011-3389"}},
	"lucky13": {Info, "CBC suites are accepted (Lucky Thirteen)",
		"Prefer AEAD suites (AES-GCM, ChaCha20-Poly1305); current TLS stacks have constant-time CBC.",
		[]string{"CVE-2013-0169"}},
}

// FindingIDs lists every id the checker can report, sorted.
func FindingIDs() []string {
	return slices.Sorted(maps.Keys(catalogue))
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
