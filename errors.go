package starttls

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

// Conditions a caller branches on. Every error returned by this package
// that stems from one of them matches it with errors.Is.
var (
	// ErrNotOffered: the server did not advertise the upgrade (stripping, or a
	// server without TLS), or answered the capability query with an error.
	ErrNotOffered = dialog.ErrNotOffered
	// ErrRefused: the server advertised the upgrade but did not give the go-ahead.
	ErrRefused = dialog.ErrRefused
	// ErrInjection: plaintext bytes were pipelined across the upgrade, by the
	// server after its go-ahead (response injection) or by the client after its
	// command (command injection, CVE-2011-0411 class).
	ErrInjection = dialog.ErrInjection
	// ErrPreauth: an IMAP server greeted with PREAUTH, which makes STARTTLS
	// impossible (RFC 3501 §6.2.1), so the session could never be protected.
	ErrPreauth = dialog.ErrPreauth
	// ErrCertificate: the server's certificate failed verification.
	ErrCertificate = errors.New("certificate verification failed")
	// ErrHandshake: the TLS handshake failed for a reason other than the certificate.
	ErrHandshake = errors.New("TLS handshake failed")
	// ErrTimeout: a phase's deadline passed.
	ErrTimeout = errors.New("timeout")
	// ErrProtocol: the peer's bytes do not follow the protocol.
	ErrProtocol = wire.ErrProtocol
	// ErrLineTooLong and ErrTooMuchData: a peer exceeded a size limit.
	ErrLineTooLong = wire.ErrLineTooLong
	ErrTooMuchData = wire.ErrTooMuchData
	// ErrClosed: the peer ended the dialogue (QUIT, LOGOUT, a closed socket).
	ErrClosed = dialog.ErrClosed
	// ErrUnknownProtocol: no protocol of that name is registered.
	ErrUnknownProtocol = errors.New("unknown protocol")
)

// Phase names a step of the upgrade, for errors and timings.
type Phase string

// Phases of a session, in order.
const (
	PhaseConnect   Phase = "connect"
	PhaseGreeting  Phase = "greeting"
	PhaseCaps      Phase = "capabilities"
	PhaseStartTLS  Phase = "starttls"
	PhaseHandshake Phase = "handshake"
	PhasePostTLS   Phase = "post-tls"
)

// ProtocolError says which peer, protocol and phase failed and carries the
// peer's reply as evidence.
type ProtocolError struct {
	Protocol Protocol
	Peer     string // the remote address
	Phase    Phase
	Reply    string // the peer's reply text (or a description of the bytes), if any
	Err      error  // the condition: one of the Err values above or an I/O error

	// What the client had seen when the upgrade failed, so that a report
	// can show the dialogue that led there (Dial and Client fill them; an
	// error from the connect phase has none).
	Greeting           string       // the greeting, if one was read
	CapabilitiesBefore Capabilities // the capabilities, if they were read
	Transcript         []Exchange   // every line exchanged before the failure
	// Received counts the bytes read from the peer before TLS, a partial
	// line included: 0 means the server said nothing at all.
	Received int64
}

func (e *ProtocolError) Error() string {
	s := fmt.Sprintf("%s %s: %s: %v", e.Protocol, e.Peer, e.Phase, e.Err)
	if e.Reply != "" {
		s += fmt.Sprintf(" (peer said %q)", e.Reply)
	}
	return s
}

func (e *ProtocolError) Unwrap() error { return e.Err }

// Status is the failure class used in JSON reports and scans.
type Status string

// Statuses, one per condition; StatusSuccess when there was no error.
const (
	StatusSuccess        Status = "success"
	StatusConnectRefused Status = "connect-refused"
	StatusConnectTimeout Status = "connect-timeout"
	StatusTimeout        Status = "timeout"
	StatusNotOffered     Status = "not-offered"
	StatusRefused        Status = "refused"
	StatusInjection      Status = "injection"
	StatusPreauth        Status = "preauth"
	StatusCertificate    Status = "certificate-error"
	StatusHandshake      Status = "handshake-error"
	StatusProtocol       Status = "protocol-error"
	StatusClosed         Status = "closed"
	StatusError          Status = "error"
)

// StatusOf classifies err.
func StatusOf(err error) Status {
	var pe *ProtocolError
	connect := errors.As(err, &pe) && pe.Phase == PhaseConnect
	switch {
	case err == nil:
		return StatusSuccess
	case errors.Is(err, ErrInjection):
		return StatusInjection
	case errors.Is(err, ErrNotOffered):
		return StatusNotOffered
	case errors.Is(err, ErrRefused):
		return StatusRefused
	case errors.Is(err, ErrPreauth):
		return StatusPreauth
	case errors.Is(err, ErrCertificate):
		return StatusCertificate
	case connect && errors.Is(err, syscall.ECONNREFUSED):
		return StatusConnectRefused
	case connect && isTimeout(err):
		return StatusConnectTimeout
	case isTimeout(err):
		return StatusTimeout
	case errors.Is(err, ErrHandshake):
		return StatusHandshake
	case errors.Is(err, ErrProtocol), errors.Is(err, ErrLineTooLong), errors.Is(err, ErrTooMuchData):
		return StatusProtocol
	case errors.Is(err, ErrClosed):
		return StatusClosed
	}
	return StatusError
}

func isTimeout(err error) bool {
	if errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// classifyIO turns an I/O error into one that names its condition, so that a
// stalled peer reads as "timeout" and a vanished one as "closed".
func classifyIO(ctx context.Context, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded):
		return ctx.Err() // canceled by the caller
	case isTimeout(err) || ctx.Err() != nil:
		return fmt.Errorf("%w: %w", ErrTimeout, err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET), errors.Is(err, net.ErrClosed):
		return fmt.Errorf("%w: %w", ErrClosed, err)
	}
	return err
}

// classifyHandshake separates certificate problems from other handshake failures.
func classifyHandshake(ctx context.Context, err error) error {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &cv), errors.As(err, &ua), errors.As(err, &hn), errors.As(err, &ci):
		return fmt.Errorf("%w: %w", ErrCertificate, err)
	case isTimeout(err) || ctx.Err() != nil:
		return classifyIO(ctx, err)
	}
	return fmt.Errorf("%w: %w", ErrHandshake, err)
}
