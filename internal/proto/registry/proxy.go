package registry

import (
	"bufio"
	"io"

	"github.com/starttls-go/starttls/internal/relayq"
)

// ProxyApp is what the proxy knows of one base protocol after the
// upgrade: how to read the backend's greeting, the filters of both
// directions and the texts it answers a client with in the protocol's
// words. The zero value relays bytes as they are (PostgreSQL, LDAP: their
// STARTTLS is the first exchange, and after it the client's first message
// starts the backend's session).
type ProxyApp struct {
	// Greeting reads the backend's greeting and returns its bytes; ok is
	// false when the backend refused the session (its reply is still
	// forwarded to the client, then the session ends). Errors for a
	// backend that does not speak the protocol wrap
	// relayq.ErrBackendProto. Nil: the client speaks first.
	Greeting func(br *bufio.Reader) (raw []byte, ok bool, err error)
	// Down copies the backend's stream to the client, removing STARTTLS
	// from capability replies. Nil: a plain copy.
	Down func(dst *bufio.Writer, src *bufio.Reader, q *relayq.Queue) error
	// Up copies the client's stream to the backend, noting commands in q
	// for Down; inside TLS it answers a repeated upgrade command itself
	// (q.Reply) and never forwards it. Nil: a plain copy.
	Up func(dst io.Writer, src *bufio.Reader, q *relayq.Queue) error
	// Unavailable is the client's clean error when the backend cannot be
	// reached (in the protocol's words); nil closes silently.
	Unavailable func(host string) string
	// TooMany is the plaintext answer to a client over a connection limit.
	TooMany string
	// Hello is the greeting a plaintext client gets in originate mode.
	Hello func(host string) string
	// Handoff replays what the backend must know when an Optional-policy
	// session goes on in plaintext (SMTP: the client's EHLO, clientName
	// being the name it gave).
	Handoff func(w io.Writer, br *bufio.Reader, clientName string) error
	// Originate says the proxy's originate mode is supported.
	Originate bool
	// NoStartTLS says the protocol has no STARTTLS dialogue in the proxy.
	NoStartTLS bool
}
