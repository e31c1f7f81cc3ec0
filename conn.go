package starttls

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"time"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

// Conn is an upgraded connection plus what was learned on the way.
// Read and Write go through TLS (or plaintext when an opportunistic client
// fell back, or an optional-policy server handed off a plaintext session).
type Conn struct {
	net.Conn // the *tls.Conn after the upgrade

	Protocol Protocol
	// TLS is the TLS connection; nil when the session stayed in plaintext.
	TLS *tls.Conn
	// Implicit is true when TLS started with the first byte.
	Implicit bool
	// Greeting is the server's greeting (first line, or the whole for
	// multi-line greetings joined by newlines).
	Greeting string
	// CapabilitiesBefore are what the server claimed before TLS: untrusted,
	// kept only for reports.
	CapabilitiesBefore Capabilities
	// Capabilities are the server's capabilities asked again inside TLS:
	// the only ones to act on.
	Capabilities Capabilities
	// Transcript is every line exchanged, in order.
	Transcript []Exchange
	Timings    Timings
	// Fallback is why an opportunistic client stayed in plaintext.
	Fallback error
	// Events are noteworthy things the server side saw (injection attempts).
	Events []Event
	// ClientName is the name a client gave (EHLO/LHLO), server side only.
	ClientName string

	reader  *wire.Reader
	session *clientSession
	pending []byte // server side, Optional policy: the bytes that ended the dialogue (moved into reader by Accept)
}

// Exchange is one line of the transcript.
type Exchange struct {
	At   time.Duration `json:"at_ns"`
	Sent bool          `json:"sent"` // sent by this side
	TLS  bool          `json:"tls"`
	Text string        `json:"text"`
}

// Timings are per-phase durations.
type Timings struct {
	Connect   time.Duration `json:"connect_ns"`
	Greeting  time.Duration `json:"greeting_ns"` // greeting and first capability query
	Dialogue  time.Duration `json:"dialogue_ns"` // STARTTLS command and go-ahead
	Handshake time.Duration `json:"handshake_ns"`
	PostTLS   time.Duration `json:"post_tls_ns"`
	Total     time.Duration `json:"total_ns"`
}

// Event is something the server side noticed, such as command injection.
type Event struct {
	Kind   string // "command-injection"
	Detail string
	Data   []byte // the offending bytes
}

// Event kinds.
const (
	EventCommandInjection = "command-injection"
)

// Upgraded reports whether the session is protected by TLS.
func (c *Conn) Upgraded() bool { return c.TLS != nil }

// ConnectionState returns the TLS state (zero when not upgraded).
func (c *Conn) ConnectionState() tls.ConnectionState {
	if c.TLS == nil {
		return tls.ConnectionState{}
	}
	return c.TLS.ConnectionState()
}

// Read reads the application stream; bytes the dialogue reader already
// buffered come first, so nothing sent inside TLS is lost.
func (c *Conn) Read(p []byte) (int, error) {
	if c.reader != nil {
		return c.reader.Read(p)
	}
	return c.Conn.Read(p)
}

// ReadLine reads one line (CRLF or LF) bounded by the line limit. It is a
// convenience for line protocols; do not mix it with buffered readers of your own.
func (c *Conn) ReadLine() (string, error) {
	if c.reader == nil {
		c.reader = wire.NewReader(c.Conn, DefaultMaxLineLength, -1)
	}
	return c.reader.ReadLine()
}

// Quit ends a client session politely (QUIT, LOGOUT, ...) and closes it.
func (c *Conn) Quit(ctx context.Context) error {
	return c.quit(ctx, c.Conn, c.reader)
}

// Hangup ends a client session without waiting for the server: it sends
// the goodbye Quit sends (QUIT, LOGOUT, ...), in one write, and closes
// without reading the answer, which tells a scanner nothing and costs a
// round trip. The error is the write's, if it failed.
func (c *Conn) Hangup(ctx context.Context) error {
	w := &writeOnly{Conn: c.Conn}
	_ = c.quit(ctx, w, wire.NewReader(w, 1, -1)) // fails reading the answer, by design
	return w.err
}

// quit runs the protocol's goodbye over conn and r, under ctx and the
// phase timeout on the connection, then closes c. A session without a
// goodbye (no client session, or a protocol with none) is only closed.
func (c *Conn) quit(ctx context.Context, conn net.Conn, r *wire.Reader) error {
	defer c.Close()
	s := c.session
	if s == nil || s.sp.client.Quit == nil {
		return nil
	}
	s.ctx = ctx
	s.dl = wire.Bind(ctx, c.Conn, s.cfg.PhaseTimeout)
	defer s.dl.Release()
	s.conn = conn
	s.r = r
	return s.sp.client.Quit(s)
}

// writeOnly passes writes on, remembering a failure, and reads nothing:
// Hangup's reader ends at once.
type writeOnly struct {
	net.Conn
	err error
}

func (w *writeOnly) Write(p []byte) (int, error) {
	n, err := w.Conn.Write(p)
	if err != nil && w.err == nil {
		w.err = err
	}
	return n, err
}

func (w *writeOnly) Read([]byte) (int, error) { return 0, io.EOF }

// Capabilities is a list of capability entries as the server sent them:
// EHLO keyword lines, IMAP atoms, POP3 CAPA lines.
type Capabilities []string

// Has reports whether an entry's keyword is name, compared
// case-insensitively. The keyword is the first word, or for IMAP-style
// atoms like AUTH=PLAIN the part before '='.
func (c Capabilities) Has(name string) bool { return dialog.Capabilities(c).Has(name) }

// Args returns the arguments of the entries whose keyword is name
// ("AUTH PLAIN LOGIN" and "AUTH=PLAIN" both give PLAIN ...).
func (c Capabilities) Args(name string) ([]string, bool) { return dialog.Capabilities(c).Args(name) }
