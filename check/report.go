package check

import (
	"slices"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certinfo"
)

// Schema is the report's schema identifier; a field's meaning never changes
// without a new one.
const Schema = "starttls.report/v1"

// Report is everything the check learned about one target.
type Report struct {
	Schema      string          `json:"schema"`
	Target      string          `json:"target"`
	Protocol    string          `json:"protocol"`
	Host        string          `json:"host"`
	Port        int             `json:"port"`
	Depth       string          `json:"depth"` // quick or full
	StartedAt   time.Time       `json:"started_at"`
	Status      starttls.Status `json:"status"` // of the main session
	Error       string          `json:"error,omitempty"`
	StartTLS    StartTLSInfo    `json:"starttls"`
	TLS         TLSInfo         `json:"tls"`
	Certificate CertificateInfo `json:"certificate"`
	Findings    []Finding       `json:"findings"`
	Grade       string          `json:"grade"`
	Timings     Timings         `json:"timings"`
}

// StartTLSInfo is the plaintext dialogue as seen by a client that requires TLS.
type StartTLSInfo struct {
	Implicit           bool                `json:"implicit"`
	Offered            bool                `json:"offered"`
	Upgraded           bool                `json:"upgraded"`
	Greeting           string              `json:"greeting,omitempty"`
	CapabilitiesBefore []string            `json:"capabilities_before"`
	CapabilitiesAfter  []string            `json:"capabilities_after"`
	Transcript         []starttls.Exchange `json:"transcript,omitempty"`
	// Probes holds the STARTTLS-specific probes' verdicts by finding id:
	// "pass", "fail", "n/a" or "error: ...".
	Probes map[string]string `json:"probes"`
}

// TLSInfo is what the TLS probes found.
type TLSInfo struct {
	Negotiated *Negotiated `json:"negotiated,omitempty"`
	// Versions maps "sslv3", "tls1.0", "tls1.1", "tls1.2", "tls1.3" to acceptance.
	Versions map[string]bool `json:"versions"`
	// CipherSuites maps a version key to the accepted suites' IANA names, in
	// the server's preference order when it has one.
	CipherSuites map[string][]string `json:"cipher_suites"`
	// ServerPreference maps a version key to whether the server picks by its own order.
	ServerPreference map[string]bool `json:"server_preference,omitempty"`
	Groups           []string        `json:"groups"`
	ProbeErrors      []string        `json:"probe_errors,omitempty"`
	// Vulnerabilities maps a vulnerability finding id (heartbleed, robot,
	// ...) to its verdict: "vulnerable", "not-vulnerable", "n/a: why" or
	// "error: why". A full check only.
	Vulnerabilities map[string]string `json:"vulnerabilities,omitempty"`
	// Facts are what testssl reports without a verdict.
	Facts *TLSFacts `json:"facts,omitempty"`
}

// TLSFacts are properties of the TLS service that are reported but not
// judged by themselves. A nil pointer or empty field was not measured.
type TLSFacts struct {
	// SessionIDIssued: the TLS 1.2 ServerHello carried a session id.
	SessionIDIssued *bool `json:"session_id_issued,omitempty"`
	// ResumptionID / ResumptionTicket: a second handshake resumed the
	// first by session id / by session ticket.
	ResumptionID     *bool `json:"resumption_id,omitempty"`
	ResumptionTicket *bool `json:"resumption_ticket,omitempty"`
	// TicketLifetimeS is the ticket lifetime hint in seconds.
	TicketLifetimeS *int `json:"ticket_lifetime_s,omitempty"`
	// MustStaple: the leaf has the TLS feature extension status_request (RFC 7633).
	MustStaple *bool `json:"must_staple,omitempty"`
	// SCTs counts signed certificate timestamps by where they came from:
	// "certificate", "ocsp", "tls-extension".
	SCTs map[string]int `json:"scts,omitempty"`
	// DHGroupBits and DHGroup describe the finite-field DHE group: its size
	// and, when it is a well-known prime, its name (e.g. "RFC 7919 ffdhe2048").
	DHGroupBits int    `json:"dh_group_bits,omitempty"`
	DHGroup     string `json:"dh_group,omitempty"`
	// ECPointFormats the server lists in its ServerHello.
	ECPointFormats []string `json:"ec_point_formats,omitempty"`
	// Compression methods the server accepts (besides null).
	Compression []string `json:"compression,omitempty"`
	// SecureRenegotiation: the server answers with renegotiation_info (RFC 5746).
	SecureRenegotiation *bool `json:"secure_renegotiation,omitempty"`
	// FirstFlight is true when the certificate and key exchange were read
	// from the server's first flight because crypto/tls could not finish
	// the handshake (e.g. DHE only).
	FirstFlight bool `json:"first_flight,omitempty"`
}

// Negotiated is what a modern client (crypto/tls) got.
type Negotiated struct {
	Version     string `json:"version"`
	CipherSuite string `json:"cipher_suite"`
	ALPN        string `json:"alpn,omitempty"`
}

// CertificateInfo is the served chain and its verdicts.
type CertificateInfo struct {
	Chain        []certinfo.Cert       `json:"chain"`
	Verification certinfo.Verification `json:"verification"`
	VerifiedName string                `json:"verified_name"`
	OCSPStapled  bool                  `json:"ocsp_stapled"`
	Lints        []Lint                `json:"lints,omitempty"`
}

// Lint is one failed certificate lint.
type Lint struct {
	Name    string `json:"name"`
	Status  string `json:"status"` // warn, error, fatal
	Details string `json:"details,omitempty"`
	Source  string `json:"source,omitempty"`
}

// Timings are in milliseconds, for humans and dashboards.
type Timings struct {
	TotalMS     float64            `json:"total_ms"`
	ConnectMS   float64            `json:"connect_ms"`
	GreetingMS  float64            `json:"greeting_ms"`
	DialogueMS  float64            `json:"dialogue_ms"`
	HandshakeMS float64            `json:"handshake_ms"`
	ProbesMS    map[string]float64 `json:"probes_ms"`
}

// Worst is the highest severity among the findings (Info when none).
func (r *Report) Worst() Severity {
	w := Info
	for _, f := range r.Findings {
		if f.Severity > w {
			w = f.Severity
		}
	}
	return w
}

// Has reports whether a finding with id is present.
func (r *Report) Has(id string) bool {
	return slices.ContainsFunc(r.Findings, func(f Finding) bool { return f.ID == id })
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
