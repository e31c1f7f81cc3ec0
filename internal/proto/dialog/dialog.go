// Package dialog is what a protocol's upgrade dialogue, client half and
// server half, is written against: the sessions the root package runs
// (Client, Server), the halves a protocol folder provides (ClientHalf,
// ServerHalf), the conditions its errors stand for and the helpers the
// dialogues share. Each protocol's halves live in internal/proto/NAME and
// are registered with internal/proto/registry (the folder's protocol.go);
// the root package runs them and re-exports the conditions
// (starttls.ErrRefused is ErrRefused), so that the public API does not
// change when a protocol is added.
//
// It imports nothing of the module but internal/wire, so that every
// protocol folder can import it.
package dialog

import (
	"errors"
	"net"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/wire"
)

// Conditions a dialogue fails with, through Client.Fail and Server.Fail;
// the root package exports them under the same names.
var (
	ErrNotOffered  = errors.New("STARTTLS not offered")
	ErrRefused     = errors.New("STARTTLS refused")
	ErrInjection   = errors.New("plaintext injection across the TLS upgrade")
	ErrPreauth     = errors.New("IMAP PREAUTH greeting: session starts authenticated without TLS")
	ErrClosed      = errors.New("connection closed by peer")
	ErrProtocol    = wire.ErrProtocol
	ErrLineTooLong = wire.ErrLineTooLong
	ErrTooMuchData = wire.ErrTooMuchData
)

// Phases a dialogue may enter (the root package's Phase values).
const (
	PhaseGreeting = "greeting"
	PhaseCaps     = "capabilities"
	PhaseStartTLS = "starttls"
	PhasePostTLS  = "post-tls"
)

// MaxReplyLines bounds a multi-line reply; real EHLO replies have ~20.
const MaxReplyLines = 512

// ClientConfig is what a client half may read of the caller's Config.
type ClientConfig struct {
	LocalName      string // EHLO argument, XMPP s2s "from"
	Domain         string // XMPP stream "to"; empty: Host
	Host           string // the host dialled
	MaxLineLength  int
	MaxPreTLSBytes int
}

// Client is one client dialogue as a client half drives it. Every read
// and write resets the phase deadline; every error it returns is already
// the session's (a *starttls.ProtocolError naming peer and phase).
type Client interface {
	// Send writes one command line with CRLF.
	Send(line string) error
	// SendRaw writes a binary or XML message in one write; desc stands
	// for it in the transcript.
	SendRaw(b []byte, desc string) error
	// ReadLine reads one bounded line; ReadFull exactly len(p) bytes.
	ReadLine() (string, error)
	ReadFull(p []byte) error
	// Reader is the bounded reader under ReadLine, for a codec that reads
	// by itself (no deadline reset).
	Reader() *wire.Reader
	// ResetDeadline starts a fresh phase deadline.
	ResetDeadline()
	// Received records a message from the server in the transcript, for
	// what ReadLine does not record itself.
	Received(text string)

	// Fail builds the session's error for condition cond seen in the
	// current phase, reply being the evidence; Failf wraps a formatted
	// detail around cond.
	Fail(cond error, reply string) error
	Failf(cond error, reply, format string, args ...any) error
	// IOErr turns a read or write error into the session's error (one
	// that already is stays as it is); FailIO does so always, with reply
	// as evidence.
	IOErr(err error) error
	FailIO(err error, reply string) error

	Config() ClientConfig
	// InTLS reports whether TLS is up.
	InTLS() bool
	// SetPhase enters a phase (PhaseCaps, ...).
	SetPhase(phase string)
	// SetCaps records the capabilities just learned and whether they
	// offer the upgrade.
	SetCaps(caps Capabilities, offered bool)
	// Greeting is the server's greeting as recorded by SetGreeting.
	Greeting() string
	SetGreeting(g string)
	// CapabilitiesBefore are the capabilities learned before TLS (nil
	// until the upgrade starts).
	CapabilitiesBefore() Capabilities
	// NextTag counts the session's tagged commands: 1, 2, ...
	NextTag() int
}

// ClientHalf is one protocol's client side of the upgrade.
type ClientHalf struct {
	// Greet reads the greeting and asks for capabilities (SetCaps). It
	// runs in plaintext, or inside TLS for implicit variants.
	Greet func(s Client) error
	// Upgrade asks for TLS and returns once the server has said go ahead.
	Upgrade func(s Client) error
	// Requery asks for capabilities again inside TLS (nil: nothing to ask).
	Requery func(s Client) error
	// Quit sends the polite goodbye and reads its answer (best effort).
	Quit func(s Client) error
	// Unsolicited: the server may send lines unasked before the go-ahead
	// (IRC notices), which Upgrade reads and skips; only bytes after the
	// go-ahead are then injection.
	Unsolicited bool
}

// Action is what a server half decided about one command.
type Action int

// Actions.
const (
	Continue Action = iota // answered; read the next command
	StartTLS               // STARTTLS accepted; go-ahead not yet sent
	Handoff                // Optional policy: the application takes over in plaintext
	Quit                   // the client said goodbye (answered)
)

// ServerConfig is what a server half may read of the caller's ServerConfig.
type ServerConfig struct {
	Hostname string
	// Optional: the Optional policy (plaintext allowed); else Required.
	Optional bool
	// Capabilities are the caller's extra capabilities; Advertised those
	// of them the policy lets through before TLS.
	Capabilities, Advertised []string
	MaxCommands              int
	MaxLineLength            int
	MaxPreTLSBytes           int
	// Start is when the connection was accepted.
	Start time.Time
}

// Server is one server dialogue as a server half drives it; its errors
// are the session's, as Client's are.
type Server interface {
	// Send writes reply lines, each with CRLF, in one write.
	Send(lines ...string) error
	// SendRaw writes a binary message; desc, if any, goes into the transcript.
	SendRaw(b []byte, desc string) error
	ReadLine() (string, error)
	ReadFull(p []byte) error
	Reader() *wire.Reader
	ResetDeadline()
	// Record adds a line to the transcript (sent: by this side).
	Record(sent bool, text string)

	Fail(cond error, reply string) error
	IOErr(err error) error
	FailIO(err error, reply string) error

	Config() ServerConfig
	SetPhase(phase string)
	// SetClientName records the name the client gave (EHLO, stream
	// "from", user).
	SetClientName(name string)
	// SetGreeting and SetCapabilitiesBefore record what this side sent.
	SetGreeting(g string)
	SetCapabilitiesBefore(c Capabilities)
	// SetPending gives the application, on Handoff, the bytes that ended
	// the dialogue (line-based halves need not: the loop does it).
	SetPending(b []byte)
	// WrapRaw replaces the connection the TLS handshake reads from.
	WrapRaw(wrap func(net.Conn) net.Conn)
	// State is the half's own per-session state (nil at first).
	State() any
	SetState(v any)
}

// ServerHalf is one protocol's server side of the upgrade.
type ServerHalf struct {
	// Greet sends the greeting (nil: the client speaks first).
	Greet func(s Server) error
	// Command handles one pre-TLS command line.
	Command func(s Server, line string) (Action, error)
	// GoAhead tells the client to start TLS.
	GoAhead func(s Server) error
	// AfterTLS, when set, speaks first inside TLS before the application
	// takes over (ManageSieve re-sends its capabilities).
	AfterTLS func(s Server) error
	// Serve, when set, replaces the line loop for protocols that are not
	// line based (binary or XML); it returns StartTLS, Handoff or Quit.
	Serve func(s Server) (Action, error)
}

// Capabilities is a list of capability entries as the server sent them;
// starttls.Capabilities is the same list.
type Capabilities []string

// Has reports whether an entry's keyword is name, compared
// case-insensitively.
func (c Capabilities) Has(name string) bool {
	_, ok := c.Args(name)
	return ok
}

// Args returns the arguments of the entries whose keyword is name
// ("AUTH PLAIN LOGIN" and "AUTH=PLAIN" both give PLAIN ...).
func (c Capabilities) Args(name string) ([]string, bool) {
	var args []string
	found := false
	for _, e := range c {
		f := strings.Fields(e)
		if len(f) == 0 {
			continue
		}
		kw, val, hasEq := strings.Cut(f[0], "=")
		if !strings.EqualFold(kw, name) {
			continue
		}
		found = true
		if hasEq {
			args = append(args, val)
		}
		args = append(args, f[1:]...)
	}
	return args, found
}

// Quote keeps evidence short; ProtocolError prints it escaped.
func Quote(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// SpeakFirst is the Greet of a protocol whose client speaks first and has
// no capabilities to ask for before the upgrade (LDAP, PostgreSQL, HTTP):
// the upgrade is taken as offered and the server's answer decides.
func SpeakFirst(s Client) error {
	s.SetCaps(nil, true)
	return nil
}

// ReadDotBlock reads a dot-terminated multi-line body (POP3 CAPA, NNTP
// CAPABILITIES), undoing dot-stuffing.
func ReadDotBlock(s Client) ([]string, error) {
	var out []string
	for i := 0; i < MaxReplyLines; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return nil, err
		}
		if line == "." {
			return out, nil
		}
		out = append(out, strings.TrimPrefix(line, "."))
	}
	return nil, s.Failf(ErrProtocol, "", "multi-line response longer than %d lines", MaxReplyLines)
}
