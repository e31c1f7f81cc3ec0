// Package imap is the codec of IMAP response lines (RFC 3501 §7, RFC 9051)
// as far as the STARTTLS dialogue needs it: tag, status and text, and
// literal announcements.
//
// It is internal: the root package's IMAP dialogue and check share it, and
// it may change with them.
package imap

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/wire"
)

// Response is one response line split into its parts: Tag is "*" for
// untagged, "+" for a continuation, else the command tag; Status is OK, NO,
// BAD, PREAUTH, BYE (upper-cased) or the untagged response's keyword.
type Response struct {
	Tag    string
	Status string
	Text   string // the rest of the line
}

// ParseResponse parses one response line.
func ParseResponse(line string) (Response, error) {
	if line == "" {
		return Response{}, fmt.Errorf("%w: empty response line", wire.ErrProtocol)
	}
	if line[0] == '+' {
		return Response{Tag: "+", Text: strings.TrimPrefix(line[1:], " ")}, nil
	}
	tag, rest, ok := strings.Cut(line, " ")
	if !ok || tag == "" || !TagOK(tag) {
		return Response{}, fmt.Errorf("%w: malformed response line %q", wire.ErrProtocol, line)
	}
	status, text, _ := strings.Cut(rest, " ")
	if status == "" {
		return Response{}, fmt.Errorf("%w: response without status %q", wire.ErrProtocol, line)
	}
	return Response{Tag: tag, Status: strings.ToUpper(status), Text: text}, nil
}

// TagOK reports whether tag may tag a command or response: "*" or an
// RFC 3501 tag.
func TagOK(tag string) bool {
	if tag == "*" {
		return true
	}
	for i := 0; i < len(tag); i++ {
		c := tag[i]
		// RFC 3501 tag: ASTRING-CHAR except '+'; no controls, spaces or specials.
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\+`, c) >= 0 {
			return false
		}
	}
	return true
}

// Literal returns n when line ends with a literal announcement {n} or {n+}.
func Literal(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	i := strings.LastIndexByte(line, '{')
	if i < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line[i+1:len(line)-1], "+"))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}
