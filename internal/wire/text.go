package wire

import (
	"errors"
	"strings"
)

// ErrProtocol is returned when a peer's bytes do not follow the protocol.
// It lives here, below the root package and the codecs in internal/proto,
// so that a codec's error matches starttls.ErrProtocol with errors.Is.
var ErrProtocol = errors.New("protocol violation")

// Printable turns peer bytes into one line of text for a transcript or an
// error: control characters become spaces, and the ends are trimmed.
func Printable(b []byte) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, string(b)))
}

// Dotted shows binary evidence with its text parts readable: every byte
// outside printable ASCII becomes a dot, so that the length is kept.
func Dotted(b []byte) string {
	var sb strings.Builder
	for _, c := range b {
		if c >= 0x20 && c < 0x7f {
			sb.WriteByte(c)
		} else {
			sb.WriteByte('.')
		}
	}
	return sb.String()
}
