// Package pop3 is the codec of POP3 status lines (RFC 1939 §3).
//
// It is internal: the root package's POP3 dialogue and check share it, and
// it may change with them.
package pop3

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/wire"
)

// ParseStatus splits a status line into ok (+OK) and its text; any
// other start is a protocol error.
func ParseStatus(line string) (ok bool, text string, err error) {
	switch {
	case line == "+OK" || strings.HasPrefix(line, "+OK "):
		return true, strings.TrimPrefix(strings.TrimPrefix(line, "+OK"), " "), nil
	case line == "-ERR" || strings.HasPrefix(line, "-ERR "):
		return false, strings.TrimPrefix(strings.TrimPrefix(line, "-ERR"), " "), nil
	}
	return false, "", fmt.Errorf("%w: status line is neither +OK nor -ERR: %q", wire.ErrProtocol, line)
}
