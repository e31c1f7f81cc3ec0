package mail

import (
	"maps"
	"slices"

	"github.com/starttls-go/starttls/check"
)

// Finding is the check package's finding: one problem with its evidence.
type Finding = check.Finding

// kind is the fixed part of a finding: everything but the evidence.
type kind struct {
	severity check.Severity
	title    string
	fix      string
	refs     []string
}

// catalogue of the domain-level finding ids. An id's meaning never changes
// within a report schema version; docs/mail.md lists them. Findings about
// one MX server's TLS (versions, certificate, injection) stay in that
// host's embedded check report.
var catalogue = map[string]kind{
	"dns-error": {check.High, "the domain's DNS could not be resolved",
		"Check the domain's name servers and DNSSEC signatures; a SERVFAIL from a validating resolver often means bogus DNSSEC.",
		[]string{"RFC 1035", "RFC 4035"}},
	"domain-not-found": {check.High, "the domain does not exist (NXDOMAIN)",
		"Check the spelling, or register and publish the domain.", []string{"RFC 8020"}},
	"null-mx": {check.Info, "the domain accepts no mail (null MX)",
		"Nothing to do if the domain must not receive mail; otherwise publish real MX records.", []string{"RFC 7505"}},
	"null-mx-invalid": {check.Medium, "a null MX is mixed with other MX records",
		"A null MX (MX 0 .) must be the only MX record: remove it or the others.", []string{"RFC 7505 §3"}},
	"no-mx": {check.Low, "the domain has no MX record; mail falls back to its address records",
		"Publish MX records naming the mail servers (the implicit MX also makes MTA-STS and DANE depend on the bare domain).",
		[]string{"RFC 5321 §5.1"}},
	"mx-no-address": {check.High, "an MX host has no address",
		"Publish A/AAAA records for every MX host or remove the MX record.", []string{"RFC 5321 §5.1"}},
	"mx-unreachable": {check.High, "an MX host could not be reached on the SMTP port",
		"Check the server and the firewall; senders retry, but mail waits.", []string{"RFC 5321 §4.5.4"}},
	"mx-no-starttls": {check.High, "an MX host that must use TLS does not offer a working STARTTLS",
		"Enable STARTTLS with a valid certificate (Postfix: smtpd_tls_security_level=may and smtpd_tls_chain_files): under MTA-STS enforce or DANE, senders will not deliver to this host.",
		[]string{"RFC 3207", "RFC 8461 §5", "RFC 7672 §2.2"}},
	"stripping-possible": {check.High, "an attacker can make senders deliver in plaintext",
		"Offer STARTTLS on every MX, then publish an MTA-STS policy in enforce mode or DNSSEC-signed TLSA records (DANE).",
		[]string{"RFC 3207 §6", "RFC 8461", "RFC 7672"}},
	"mta-sts-missing": {check.Medium, "no MTA-STS policy is published",
		"Publish _mta-sts TXT \"v=STSv1; id=...\" and https://mta-sts.DOMAIN/.well-known/mta-sts.txt with mode: enforce.",
		[]string{"RFC 8461 §3"}},
	"mta-sts-invalid-record": {check.High, "the _mta-sts TXT record is invalid, so there is no policy",
		"Publish exactly one TXT record \"v=STSv1; id=<1-32 letters or digits>\" at _mta-sts.DOMAIN.",
		[]string{"RFC 8461 §3.1"}},
	"mta-sts-fetch-failed": {check.High, "the MTA-STS policy cannot be fetched as the RFC requires",
		"Serve the policy at https://mta-sts.DOMAIN/.well-known/mta-sts.txt with a publicly trusted certificate for that name, status 200, no redirect, Content-Type text/plain, at most 64 KiB.",
		[]string{"RFC 8461 §3.2", "RFC 8461 §3.3"}},
	"mta-sts-invalid-policy": {check.High, "the MTA-STS policy does not parse",
		"Fix the policy: version: STSv1, mode: enforce|testing|none, one mx: line per MX pattern, max_age: 0..31557600, one field per line.",
		[]string{"RFC 8461 §3.2"}},
	"mta-sts-testing": {check.Low, "the MTA-STS policy is in testing mode: failures are reported, not prevented",
		"Once TLS-RPT reports show no failures, switch the policy to mode: enforce (and change the TXT id).",
		[]string{"RFC 8461 §5"}},
	"mta-sts-mode-none": {check.Medium, "the MTA-STS policy has mode none: it is withdrawn",
		"Use mode: enforce, or remove the policy and its TXT record once caches have expired.",
		[]string{"RFC 8461 §5", "RFC 8461 §8.3"}},
	"mta-sts-mx-mismatch": {check.High, "an MX host does not match the MTA-STS policy's mx patterns",
		"Add the MX host (or a \"*.\" pattern covering it) to the policy's mx lines and change the TXT id; under enforce, senders do not deliver to it.",
		[]string{"RFC 8461 §4.1"}},
	"mta-sts-mx-cert-invalid": {check.High, "an MX host's certificate is not valid for its name under MTA-STS",
		"Serve a certificate from a public CA that names the MX host; under enforce, senders do not deliver to it.",
		[]string{"RFC 8461 §4.2"}},
	"dane-mismatch": {check.Critical, "no TLSA record matches the certificate chain the MX presents",
		"Publish TLSA records for the served key (3 1 1 is recommended; publish the new record before rolling the key) or serve the matching chain: DANE senders defer all mail to this host.",
		[]string{"RFC 7672 §3", "RFC 6698 §2.1", "RFC 7671 §8"}},
	"dane-no-dnssec": {check.High, "TLSA records are published without DNSSEC, so DANE does not apply",
		"Sign the zones of the domain and of the MX hosts with DNSSEC (and publish DS in the parents), or remove the TLSA records.",
		[]string{"RFC 7672 §2.2", "RFC 4033"}},
	"dane-usage-not-recommended": {check.Low, "TLSA records use PKIX usages (0 or 1), which SMTP senders may ignore",
		"Publish DANE-EE (3 1 1) or DANE-TA (2 0 1) records instead.",
		[]string{"RFC 7672 §3.1.3"}},
	"dane-tlsa-unusable": {check.Medium, "TLSA records have unknown parameters or malformed data",
		"Use usage 2 or 3, selector 0 or 1, matching type 0, 1 or 2 with a digest of the right length.",
		[]string{"RFC 6698 §2.1", "RFC 7671 §4"}},
	"tlsrpt-missing": {check.Low, "no TLS-RPT record: TLS failures at senders go unreported",
		"Publish _smtp._tls TXT \"v=TLSRPTv1; rua=mailto:tlsrpt@DOMAIN\".", []string{"RFC 8460 §3"}},
	"tlsrpt-invalid": {check.Medium, "the _smtp._tls TXT record is invalid, so no reports are sent",
		"Publish exactly one record \"v=TLSRPTv1; rua=mailto:...\" with comma-separated mailto: or https: URIs.",
		[]string{"RFC 8460 §3"}},
}

// FindingIDs lists every id mail can report, sorted.
func FindingIDs() []string {
	return slices.Sorted(maps.Keys(catalogue))
}

// newFinding builds a finding from the catalogue.
func newFinding(id, evidence string) Finding {
	k, ok := catalogue[id]
	if !ok {
		panic("mail: finding id not in catalogue: " + id)
	}
	return Finding{ID: id, Severity: k.severity, Title: k.title, Evidence: evidence, Fix: k.fix, References: k.refs}
}

func withSeverity(f Finding, s check.Severity) Finding { f.Severity = s; return f }
