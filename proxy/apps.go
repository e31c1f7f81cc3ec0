package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/starttls-go/starttls"
)

// app is what the proxy knows of one base protocol after the upgrade.
type app struct {
	// greeting reads the backend's greeting and returns its bytes; ok is
	// false when the backend refused the session (its reply is still
	// forwarded to the client, then the session ends). Nil: the client
	// speaks first.
	greeting func(br *bufio.Reader) (raw []byte, ok bool, err error)
	// down copies the backend's stream to the client, removing STARTTLS
	// from capability replies. Nil: a plain copy.
	down func(dst *bufio.Writer, src *bufio.Reader, q *cmdQueue) error
	// up copies the client's stream to the backend, noting commands in q
	// for down; inside TLS it answers a repeated upgrade command itself
	// (q.reply) and never forwards it. Nil: a plain copy.
	up func(dst io.Writer, src *bufio.Reader, q *cmdQueue) error
	// unavailable is the client's clean error when the backend cannot be
	// reached (in the protocol's words); "" closes silently.
	unavailable func(host string) string
	// tooMany is the plaintext answer to a client over a connection limit.
	tooMany string
	// hello is the greeting a plaintext client gets in originate mode.
	hello func(host string) string
	// handoff replays what the backend must know when an Optional-policy
	// session goes on in plaintext (SMTP: the client's EHLO).
	handoff func(w io.Writer, br *bufio.Reader, c *starttls.Conn) error
	// originate: the mode is supported.
	originate bool
	// noStartTLS: the protocol has no STARTTLS dialogue in the proxy.
	noStartTLS bool
}

// maxGreeting bounds a backend greeting.
const (
	maxGreetingLines = 100
	maxGreetingBytes = 64 << 10
)

var apps = map[starttls.Protocol]*app{}

func init() {
	smtp := &app{
		greeting:    smtpGreeting,
		down:        smtpDown,
		up:          smtpUp,
		unavailable: func(h string) string { return "421 4.3.0 " + h + " Service not available, backend unreachable\r\n" },
		tooMany:     "421 4.7.0 Too many connections, try again later\r\n",
		hello:       func(h string) string { return "220 " + h + " ESMTP ready (TLS to the server by starttls proxy)\r\n" },
		handoff:     smtpHandoff,
		originate:   true,
	}
	imap := &app{
		greeting:    imapGreeting,
		down:        imapDown,
		up:          imapUp,
		unavailable: func(string) string { return "* BYE [UNAVAILABLE] Backend unreachable\r\n" },
		tooMany:     "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
		hello: func(h string) string {
			return "* OK " + h + " IMAP4rev1 ready (TLS to the server by starttls proxy)\r\n"
		},
		originate: true,
	}
	pop3 := &app{
		greeting:    pop3Greeting,
		down:        pop3Down,
		up:          pop3Up,
		unavailable: func(string) string { return "-ERR [SYS/TEMP] Backend unreachable\r\n" },
		tooMany:     "-ERR [IN-USE] Too many connections, try again later\r\n",
		hello:       func(h string) string { return "+OK " + h + " POP3 ready (TLS to the server by starttls proxy)\r\n" },
		originate:   true,
	}
	// Binary protocols whose STARTTLS is the first exchange: after it the
	// client's first message (StartupMessage, LDAP request) starts the
	// backend's session, so the bytes are relayed as they are.
	raw := &app{originate: true}
	lmtp := *smtp
	lmtp.up = lmtpUp
	apps["smtp"], apps["submission"], apps["lmtp"] = smtp, smtp, &lmtp
	apps["imap"] = imap
	apps["pop3"] = pop3
	apps["postgres"] = raw
	apps["ldap"] = raw
}

func appFor(base starttls.Protocol) *app {
	a := apps[base]
	if a == nil {
		return nil
	}
	if _, err := starttls.Lookup(base); err != nil {
		return nil
	}
	return a
}

// SupportedProtocols lists the protocols the proxy relays (those
// registered in the starttls package), with their implicit variants.
func SupportedProtocols() string {
	var out []string
	for _, p := range starttls.Protocols() {
		info, err := starttls.Lookup(p)
		if err == nil && appFor(info.Base) != nil {
			out = append(out, string(p))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// errBackendProto marks a backend that does not speak the protocol.
var errBackendProto = errors.New("backend protocol error")

// readLine reads one complete line for the dialogue parts (greetings),
// bounded by the reader's buffer.
func readLine(br *bufio.Reader) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: line longer than %d bytes", errBackendProto, br.Size())
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// copyN copies n bytes, flushing dst before src blocks (the client of a
// synchronising IMAP literal waits for the backend's go-ahead).
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64) error {
	for n > 0 {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return err
			}
			if _, err := src.Peek(1); err != nil {
				return err
			}
		}
		b, _ := src.Peek(int(min(int64(src.Buffered()), n)))
		if _, err := dst.Write(b); err != nil {
			return err
		}
		_, _ = src.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// isKeywordBytes reports whether the first word of text is kw (ASCII, case-insensitive).
func isKeywordBytes(text []byte, kw string) bool {
	text = bytes.TrimLeft(text, " \t")
	if len(text) < len(kw) || !bytes.EqualFold(text[:len(kw)], []byte(kw)) {
		return false
	}
	return len(text) == len(kw) || text[len(kw)] == ' ' || text[len(kw)] == '\t'
}

// isKeyword reports whether the first word of text is kw (case-insensitive).
func isKeyword(text, kw string) bool { return isKeywordBytes([]byte(text), kw) }

// POP3 command kinds, for reading the matching response.
const (
	kindSingle = iota
	kindMulti  // +OK is followed by lines up to "."
	kindCapa   // as kindMulti; STLS is removed
	// LMTP (counted replies): a message has one per accepted recipient.
	kindMail
	kindRcpt
	kindMessage
)
