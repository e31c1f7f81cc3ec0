// Package store keeps watch's history in SQLite (embedded, the default)
// or PostgreSQL: one row per run, findings as rows with the time they
// appeared and disappeared, every change, and each subject's latest state
// for the dashboard.
package store

import "time"

// Subject kinds.
const (
	KindTarget = "target" // one server, checked with package check
	KindDomain = "domain" // one mail domain, checked with package mail
)

// Finding is one finding of a run. Host is the MX host a domain's finding
// came from ("" for the domain itself or for a target).
type Finding struct {
	ID       string `json:"id"`
	Severity string `json:"severity"`
	Title    string `json:"title"`
	Host     string `json:"host,omitempty"`
}

// Key identifies a finding within its subject.
func (f Finding) Key() string {
	if f.Host == "" {
		return f.ID
	}
	return f.Host + "/" + f.ID
}

// Cert is a served leaf certificate.
type Cert struct {
	Host     string    `json:"host,omitempty"`
	SHA256   string    `json:"sha256"`
	Subject  string    `json:"subject"`
	NotAfter time.Time `json:"not_after"`
}

// Snapshot is what one run learned, reduced to what changes are computed
// from. The full report is stored beside it.
type Snapshot struct {
	Subject   string    `json:"subject"` // "target:smtp://host:25" or "domain:example.org"
	Kind      string    `json:"kind"`
	Name      string    `json:"name"` // the URL or the domain
	At        time.Time `json:"at"`
	Status    string    `json:"status"`
	Reachable bool      `json:"reachable"`
	Grade     string    `json:"grade"`
	Worst     string    `json:"worst"` // the highest finding severity, "" when none
	Error     string    `json:"error,omitempty"`
	Findings  []Finding `json:"findings"`
	Certs     []Cert    `json:"certs,omitempty"`
	// Versions and Suites are the accepted TLS versions and cipher suites
	// ("host: name" for a domain's MX hosts); nil when not measured.
	Versions []string `json:"versions,omitempty"`
	Suites   []string `json:"suites,omitempty"`
	STSID    string   `json:"sts_id,omitempty"`
	STSMode  string   `json:"sts_mode,omitempty"`
	MX       []string `json:"mx,omitempty"`
	// TLSA maps an MX host to its DANE verdict (mail.DANEPass, ...).
	TLSA map[string]string `json:"tlsa,omitempty"`
}

// EarliestExpiry is the soonest NotAfter of the snapshot's certificates
// (zero when there is none).
func (s *Snapshot) EarliestExpiry() time.Time {
	var t time.Time
	for _, c := range s.Certs {
		if t.IsZero() || c.NotAfter.Before(t) {
			t = c.NotAfter
		}
	}
	return t
}

// State is what change detection remembers between runs besides the
// last snapshot: conditions already announced, so that a persisting
// problem alerts once and its end is announced once.
type State struct {
	// Fails counts consecutive unreachable runs.
	Fails int `json:"fails"`
	// Open maps a condition key (e.g. "unreachable", "tlsa:mx1") to the
	// message that announced it.
	Open map[string]string `json:"open,omitempty"`
	// Expiry maps a certificate's SHA-256 to the smallest days-left
	// threshold already announced for it.
	Expiry map[string]int `json:"expiry,omitempty"`
}

// Change is one difference between two runs of a subject.
type Change struct {
	Subject  string    `json:"subject"`
	At       time.Time `json:"at"`
	Kind     string    `json:"kind"`
	Severity string    `json:"severity"` // info, low, medium, high, critical
	Message  string    `json:"message"`
	// Recovery marks the end of a condition announced earlier.
	Recovery bool `json:"recovery,omitempty"`
	// Detail carries the fields of an alert that did not come from a
	// run (a TLS-RPT report's sender, policy, rate) to the webhook; it is
	// not stored.
	Detail map[string]any `json:"detail,omitempty"`
}

// Run is one completed run as stored.
type Run struct {
	Snapshot Snapshot
	// Baseline is what the next run is compared with (the last snapshot
	// of a run that answered); it is what Priors returns.
	Baseline Snapshot
	State    State
	Changes  []Change
	// Appeared and Disappeared are the findings that opened and closed
	// with this run.
	Appeared, Disappeared []Finding
	// Report is the check or mail report as JSON.
	Report     []byte
	DurationMS float64
	// First marks the first run of the subject.
	First bool
}

// SubjectRow is a subject's latest state, as the dashboard lists it.
type SubjectRow struct {
	Subject      string
	Kind         string
	Name         string
	LastRun      time.Time
	Status       string
	Grade        string
	Worst        string
	Error        string
	CertNotAfter time.Time // zero when no certificate was seen
	LastChangeAt time.Time // zero when nothing changed yet
	LastChange   string
	Fails        int
	Runs         int64
}

// RunRow is one past run in a subject's history.
type RunRow struct {
	At     time.Time
	Status string
	Grade  string
	Worst  string
}

// Span is the time a finding was present: Until is zero while it still is.
type Span struct {
	Finding  string // Finding.Key()
	Severity string
	Title    string
	Since    time.Time
	Until    time.Time
}

// Prior is what a restarted watch needs to continue change detection.
type Prior struct {
	Snapshot Snapshot
	State    State
}
