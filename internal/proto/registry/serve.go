package registry

import (
	"context"
	"encoding/base64"
	"strings"
)

// Session is one upgraded connection as serve hands it to a line-based
// application: every read and write has serve's idle deadline, and a
// line is bounded.
type Session interface {
	// ReadLine returns the next line without its CRLF.
	ReadLine() (string, error)
	// ReadN returns the n raw bytes of a literal and consumes the rest of
	// its command line.
	ReadN(n int) (string, error)
	// Write sends each line followed by CRLF.
	Write(lines ...string) error
	// Secure reports whether TLS is on; Implicit whether it was from the
	// first byte.
	Secure() bool
	Implicit() bool
	// CheckUser reports whether serve accepts the credentials.
	CheckUser(user, pass string) bool
	// Hostname is the name serve answers as.
	Hostname() string
}

// App is the minimal application serve runs after the upgrade; it returns
// when the client leaves, ctx ends or a read fails.
type App func(ctx context.Context, s Session)

// PlainCredentials decodes a SASL PLAIN response (RFC 4616), for the
// applications that take AUTH PLAIN or AUTHENTICATE PLAIN.
func PlainCredentials(b64 string) (user, pass string, ok bool) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return "", "", false
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 {
		return "", "", false
	}
	return parts[1], parts[2], true
}
