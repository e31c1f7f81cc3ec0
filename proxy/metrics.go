package proxy

import (
	"crypto/tls"
	"time"
)

// Metrics receives what the proxy counts. Implementations must be safe for
// concurrent use; the proxy calls them on hot paths, so they must not block.
// The CLI wires Prometheus behind it; NopMetrics is the default.
type Metrics interface {
	// Connection counts an accepted TCP connection (before limits).
	Connection(listener string)
	// Active moves the gauge of sessions in progress by delta.
	Active(listener string, delta int)
	// Handshake counts a completed TLS handshake (towards the client in
	// terminate/implicit mode, towards the remote server in originate mode).
	Handshake(listener string, state tls.ConnectionState, took time.Duration)
	// Failure counts a session that ended badly, by reason (the Reason constants).
	Failure(listener, reason string)
	// Bytes counts relayed payload; dir is DirUp (client to backend) or DirDown.
	Bytes(listener, dir string, n int)
	// Latency observes a phase's duration: PhaseSetup (accept until the relay
	// starts), PhaseBackend (backend connect and greeting), PhaseSession (the whole session).
	Latency(listener, phase string, d time.Duration)
}

// Directions for Metrics.Bytes.
const (
	DirUp   = "client_to_backend"
	DirDown = "backend_to_client"
)

// Phases for Metrics.Latency.
const (
	PhaseSetup   = "setup"
	PhaseBackend = "backend"
	PhaseSession = "session"
)

// Failure reasons (Metrics.Failure, and "reason" in logs). Failures of the
// upgrade use starttls.StatusOf's values (timeout, injection,
// handshake-error, protocol-error, closed, ...) prefixed with "client-" or,
// in originate mode, "remote-".
const (
	ReasonLimitTotal    = "limit-total"
	ReasonLimitListener = "limit-listener"
	ReasonLimitIP       = "limit-per-ip"
	ReasonBackendDown   = "backend-unavailable"
	ReasonBackendProto  = "backend-protocol-error"
	ReasonIdle          = "idle-timeout"
	ReasonShutdown      = "shutdown"
	ReasonRelayError    = "relay-error"
)

// NopMetrics counts nothing.
type NopMetrics struct{}

// Connection implements Metrics.
func (NopMetrics) Connection(string) {}

// Active implements Metrics.
func (NopMetrics) Active(string, int) {}

// Handshake implements Metrics.
func (NopMetrics) Handshake(string, tls.ConnectionState, time.Duration) {}

// Failure implements Metrics.
func (NopMetrics) Failure(string, string) {}

// Bytes implements Metrics.
func (NopMetrics) Bytes(string, string, int) {}

// Latency implements Metrics.
func (NopMetrics) Latency(string, string, time.Duration) {}
