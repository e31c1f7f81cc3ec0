package mail

import (
	"slices"
	"time"

	"github.com/starttls-go/starttls/check"
)

// Schema is the mail report's schema identifier; a field's meaning never
// changes without a new one.
const Schema = "starttls.mail/v1"

// Report is everything learned about one mail domain.
type Report struct {
	Schema    string    `json:"schema"`
	Domain    string    `json:"domain"`
	StartedAt time.Time `json:"started_at"`
	Resolver  string    `json:"resolver"`
	// ADTrusted says whether the resolver's AD bits were believed (it is on
	// loopback, or --trust-ad).
	ADTrusted bool `json:"ad_trusted"`
	// Status is "ok", "dns-error" (no usable answer), "no-mail" (null MX)
	// or "unreachable" (no MX host could be reached).
	Status string   `json:"status"`
	Error  string   `json:"error,omitempty"`
	MX     MXInfo   `json:"mx"`
	MTASTS MTASTS   `json:"mta_sts"`
	TLSRPT TLSRPT   `json:"tls_rpt"`
	DANE   DANEInfo `json:"dane"`
	// RequireTLS is true when every reachable MX advertises REQUIRETLS
	// after TLS (RFC 8689).
	RequireTLS bool      `json:"requiretls"`
	Findings   []Finding `json:"findings"`
	Grade      string    `json:"grade"`
	TotalMS    float64   `json:"total_ms"`
}

// Report statuses.
const (
	StatusOK          = "ok"
	StatusDNSError    = "dns-error"
	StatusNoMail      = "no-mail"
	StatusUnreachable = "unreachable"
)

// MXInfo is the MX RRset and each host's results.
type MXInfo struct {
	// Secure says the MX answer (or the fallback address answer) was
	// DNSSEC-validated by a trusted resolver.
	Secure bool `json:"secure"`
	// NullMX is RFC 7505's "MX 0 .": the domain accepts no mail.
	NullMX bool `json:"null_mx"`
	// Implicit is true when there is no MX and the domain's own address
	// records are used (RFC 5321 §5.1).
	Implicit bool      `json:"implicit"`
	Hosts    []*MXHost `json:"hosts"`
}

// MXHost is one MX target.
type MXHost struct {
	Name       string   `json:"name"`
	Preference uint16   `json:"preference"`
	Addresses  []string `json:"addresses"`
	// Secure says the address answers were DNSSEC-validated.
	Secure bool `json:"secure"`
	// CNAME is the canonical name when the host name is an alias.
	CNAME string `json:"cname,omitempty"`
	// Checked is the address the check ran against.
	Checked string `json:"checked,omitempty"`
	// STARTTLS says a TLS session could be established after STARTTLS.
	STARTTLS bool `json:"starttls"`
	// RequireTLS says the post-TLS EHLO advertised REQUIRETLS (RFC 8689).
	RequireTLS bool `json:"requiretls"`
	// CertValid says the certificate verifies (PKIX) for the host name.
	CertValid bool `json:"cert_valid"`
	// STSMatch is the MTA-STS pattern the host matched ("" when none or
	// no policy).
	STSMatch string `json:"sts_match,omitempty"`
	// DANE is the host's TLSA lookup and verification.
	DANE *HostDANE `json:"dane,omitempty"`
	// Check is the host's full check report.
	Check *check.Report `json:"check,omitempty"`
}

// HostDANE is one MX host's TLSA records and verdict.
type HostDANE struct {
	// Name is where the TLSA records were found (_PORT._tcp.BASE).
	Name string `json:"name"`
	// Base is the TLSA base domain (RFC 7672 §2.2.2).
	Base    string `json:"base"`
	Secure  bool   `json:"secure"`
	Records []TLSA `json:"records"`
	// Verdict: "pass", "fail", "unusable" (no usable record), "insecure"
	// (records without DNSSEC), "no-tls" (no TLS session to verify), "none".
	Verdict string `json:"verdict"`
	Detail  string `json:"detail,omitempty"`
}

// DANE verdicts.
const (
	DANEPass     = "pass"
	DANEFail     = "fail"
	DANEUnusable = "unusable"
	DANEInsecure = "insecure"
	DANENoTLS    = "no-tls"
	DANENone     = "none"
)

// DANEInfo sums the domain up.
type DANEInfo struct {
	// Enabled: every MX has usable TLSA records and the MX RRset and the
	// TLSA RRsets are DNSSEC-secure, so DANE senders require verified TLS.
	Enabled bool `json:"enabled"`
}

// MTASTS is what the MTA-STS discovery found.
type MTASTS struct {
	Records []string   `json:"records"` // the TXT strings that begin with v=STSv1
	Record  *STSRecord `json:"record,omitempty"`
	URL     string     `json:"url,omitempty"`
	// Addresses of mta-sts.DOMAIN as resolved.
	Addresses []string `json:"addresses,omitempty"`
	Body      string   `json:"body,omitempty"`
	Policy    *Policy  `json:"policy,omitempty"`
	// Mode is the policy's mode when it was fetched and valid, else "".
	Mode  string `json:"mode,omitempty"`
	Error string `json:"error,omitempty"`
}

// TLSRPT is the _smtp._tls record.
type TLSRPT struct {
	Records []string      `json:"records"`
	Record  *TLSRPTRecord `json:"record,omitempty"`
	Error   string        `json:"error,omitempty"`
}

// Worst is the highest severity among the findings (Info when none).
func (r *Report) Worst() check.Severity {
	w := check.Info
	for _, f := range r.Findings {
		w = max(w, f.Severity)
	}
	return w
}

// Has reports whether a finding with id is present.
func (r *Report) Has(id string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.ID == id })
}

// IDs lists the finding ids in order.
func (r *Report) IDs() []string {
	out := make([]string, 0, len(r.Findings))
	for _, f := range r.Findings {
		out = append(out, f.ID)
	}
	return out
}

var gradeOrder = []string{"F", "D", "C", "B", "A", "A+"}

func gradeRank(g string) int {
	for i, x := range gradeOrder {
		if x == g {
			return i
		}
	}
	return 0
}

// Grade derives the domain's letter (docs/mail.md):
//
//	n/a  null MX: the domain takes no mail
//	F    a critical finding, DNS failure, or no MX reachable
//	D    two or more high findings
//	C    one high finding
//	B    the worst finding is medium
//	A    the worst finding is low
//	A+   nothing above info and delivery is protected (MTA-STS enforce or DANE)
//
// and the result is capped by the worst MX host's check grade.
func Grade(r *Report) string {
	if r.MX.NullMX && r.Status == StatusNoMail {
		return "n/a"
	}
	if r.Status == StatusDNSError || r.Status == StatusUnreachable {
		return "F"
	}
	highs := 0
	for _, f := range r.Findings {
		if f.Severity == check.High {
			highs++
		}
	}
	g := "A"
	switch w := r.Worst(); {
	case w == check.Critical:
		g = "F"
	case highs >= 2:
		g = "D"
	case highs == 1:
		g = "C"
	case w == check.Medium:
		g = "B"
	case w == check.Low:
		g = "A"
	case r.MTASTS.Mode == ModeEnforce || r.DANE.Enabled:
		g = "A+"
	}
	for _, h := range r.MX.Hosts {
		if h.Check != nil && gradeRank(h.Check.Grade) < gradeRank(g) {
			g = h.Check.Grade
		}
	}
	return g
}
