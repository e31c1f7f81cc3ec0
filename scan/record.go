package scan

import (
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// RecordSchema names the JSON-lines record; a field's meaning never
// changes without a new one.
const RecordSchema = "starttls.scan/v1"

// StatusDNS is the class of a target whose host name did not resolve.
const StatusDNS starttls.Status = "dns-error"

// StatusNullMX is the class of a mail domain that publishes a null MX
// (RFC 7505: a single MX record "."): it accepts no mail, so there is
// nothing to check. A domain whose MX records did not resolve (or that
// does not exist) gets StatusDNS.
const StatusNullMX starttls.Status = "null-mx"

// StatusGreetingTimeout is the class of a target that accepted the
// connection but sent no greeting (banner) within the phase's timeout:
// a tarpit, an overloaded daemon or a port that is not the protocol's.
// A stall later in the dialogue stays starttls.StatusTimeout, and no
// answer to the SYN starttls.StatusConnectTimeout.
const StatusGreetingTimeout starttls.Status = "greeting-timeout"

// StatusBadInput is the class of an input line that is not a target.
const StatusBadInput starttls.Status = "bad-input"

// Record is the result for one target: a summary for queries and the
// check's report (schema starttls.report/v1) embedded.
type Record struct {
	Schema      string          `json:"schema"`
	Target      string          `json:"target"` // the key: proto://host:port
	Protocol    string          `json:"protocol"`
	Host        string          `json:"host"`
	Port        int             `json:"port"`
	IP          string          `json:"ip,omitempty"` // the address checked
	Status      starttls.Status `json:"status"`
	Error       string          `json:"error,omitempty"`
	Grade       string          `json:"grade,omitempty"`
	TLSVersion  string          `json:"tls_version,omitempty"`
	CipherSuite string          `json:"cipher_suite,omitempty"`
	Findings    []FindingRef    `json:"findings"`
	Attempts    int             `json:"attempts"`
	Shard       string          `json:"shard,omitempty"`
	ScannedAt   time.Time       `json:"scanned_at"`
	Timings     RecordTimings   `json:"timings"`
	Report      *check.Report   `json:"report,omitempty"`

	// MX scans (Options.MX) only. Domain is the mail domain the record
	// belongs to. A record of one MX host (target smtp://HOST:PORT) has
	// the host's preference; a domain-level record (target "mx:DOMAIN",
	// status null-mx or dns-error) has none.
	Domain       string `json:"domain,omitempty"`
	MXPreference *int   `json:"mx_preference,omitempty"`
	// ImplicitMX: the domain has no MX records and is its own mail host
	// (RFC 5321 section 5.1), at preference 0.
	ImplicitMX bool `json:"implicit_mx,omitempty"`
	// Cached: the host was checked earlier in this scan for another
	// domain; this is a copy of that record (same outcome, grade,
	// findings and time) with Attempts 0 and without the report.
	Cached bool `json:"cached,omitempty"`
}

// FindingRef is a finding's id and severity.
type FindingRef struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
}

// RecordTimings are in milliseconds.
type RecordTimings struct {
	TotalMS     float64 `json:"total_ms"`     // all attempts, DNS and waits for the rate and /24 limits included
	CheckMS     float64 `json:"check_ms"`     // the last attempt's check
	ConnectMS   float64 `json:"connect_ms"`   // from the report
	HandshakeMS float64 `json:"handshake_ms"` // from the report
}

// newRecord summarises a report.
func newRecord(t starttls.Target, ip string, r *check.Report) Record {
	rec := Record{
		Schema: RecordSchema, Target: Key(t), Protocol: string(t.Protocol), Host: t.Host, Port: t.Port, IP: ip,
		Findings: []FindingRef{}, ScannedAt: time.Now().UTC(),
	}
	if r == nil {
		return rec
	}
	rec.Status, rec.Error = statusOf(r)
	rec.Grade, rec.Report = r.Grade, r
	if n := r.TLS.Negotiated; n != nil {
		rec.TLSVersion, rec.CipherSuite = n.Version, n.CipherSuite
	}
	for _, f := range r.Findings {
		rec.Findings = append(rec.Findings, FindingRef{ID: f.ID, Severity: f.Severity.String()})
	}
	rec.Timings.CheckMS = r.Timings.TotalMS
	rec.Timings.ConnectMS = r.Timings.ConnectMS
	rec.Timings.HandshakeMS = r.Timings.HandshakeMS
	return rec
}

// statusOf is a record's class: the check's, refined where a scan needs
// more than one report does. The report keeps the check's own status.
//
// A greeting stall is told from later ones by the phase in the check's
// error text (a *starttls.ProtocolError's "PROTO PEER: PHASE: ..."),
// the only place a report keeps it.
//
// A session that upgraded but whose served chain does not verify
// (untrusted, name mismatch, expired; against Options.Roots) is
// certificate-error, as a client that requires TLS sees it (DESIGN §4.3):
// the record keeps its grade, version, suite and findings. A report
// without a chain (a substitute CheckFunc's) has no verdict to apply.
func statusOf(r *check.Report) (starttls.Status, string) {
	switch {
	case r.Status == starttls.StatusTimeout && phaseOf(r.Error) == starttls.PhaseGreeting:
		return StatusGreetingTimeout, r.Error
	case r.Status == starttls.StatusSuccess && len(r.Certificate.Chain) > 0 && !r.Certificate.Verification.OK:
		v := r.Certificate.Verification
		msg := v.Error
		if msg == "" {
			msg = "the certificate does not verify"
		}
		return starttls.StatusCertificate, "certificate: " + msg
	}
	return r.Status, r.Error
}

// phaseOf reads the phase out of a *starttls.ProtocolError's text; ""
// when the text is not one. The protocol's registered name (submission,
// xmpp-server ...) need not be the report's, so only the shape
// "NAME PEER: PHASE: " and a known phase are required.
func phaseOf(msg string) starttls.Phase {
	head, rest, ok := strings.Cut(msg, ": ")
	if !ok || strings.Count(head, " ") != 1 {
		return ""
	}
	phase, _, ok := strings.Cut(rest, ": ")
	if !ok {
		return ""
	}
	switch p := starttls.Phase(phase); p {
	case starttls.PhaseConnect, starttls.PhaseGreeting, starttls.PhaseCaps, starttls.PhaseStartTLS, starttls.PhaseHandshake, starttls.PhasePostTLS:
		return p
	}
	return ""
}
