// Package smtp is the codec of three-digit reply lines: SMTP and LMTP
// (RFC 5321 §4.2) and, through ParseCodeLine, FTP and NNTP, whose replies
// have the same shape.
//
// It is internal: the root package's dialogues, check and proxy share it,
// and it may change with them.
package smtp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/wire"
)

// Reply is one parsed, possibly multi-line, reply.
type Reply struct {
	Code  int
	Lines []string // text after the code on each line
}

func (r Reply) String() string {
	if len(r.Lines) == 0 {
		return strconv.Itoa(r.Code)
	}
	return strconv.Itoa(r.Code) + " " + strings.Join(r.Lines, " / ")
}

// ParseLine splits one reply line into its code, whether more lines
// follow ("250-"), and its text. A bare code ("250") is valid.
func ParseLine(line string) (code int, more bool, text string, err error) {
	return ParseCodeLine(line, 200)
}

// ParseCodeLine parses a three-digit reply line whose code is at least
// lowest and below 600. FTP (RFC 959) and NNTP (RFC 3977) replies have the
// shape SMTP took from FTP, so their dialogues use it too.
func ParseCodeLine(line string, lowest int) (code int, more bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", fmt.Errorf("%w: reply line too short: %q", wire.ErrProtocol, line)
	}
	for i := 0; i < 3; i++ {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", fmt.Errorf("%w: reply line without a status code: %q", wire.ErrProtocol, line)
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if code < lowest || code > 599 {
		return 0, false, "", fmt.Errorf("%w: status code %d out of range: %q", wire.ErrProtocol, code, line)
	}
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case '-':
		more = true
	case ' ':
	default:
		return 0, false, "", fmt.Errorf("%w: bad separator after status code: %q", wire.ErrProtocol, line)
	}
	return code, more, line[4:], nil
}

// Multiline formats lines as one reply: "250-a", "250-b", "250 c".
func Multiline(code int, lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		out[i] = strconv.Itoa(code) + sep + l
	}
	return out
}

// ReadReply reads one whole reply with line, at most 100 lines, and
// returns its code and its lines joined by CRLF (SMTP, FTP, NNTP).
func ReadReply(line func() (string, error)) (int, string, error) {
	var lines []string
	for i := 0; i < 100; i++ {
		l, err := line()
		if err != nil {
			return 0, strings.Join(lines, "\r\n"), err
		}
		lines = append(lines, l)
		code, more, _, err := ParseLine(l)
		if err != nil {
			return 0, strings.Join(lines, "\r\n"), err
		}
		if !more {
			return code, strings.Join(lines, "\r\n"), nil
		}
	}
	return 0, strings.Join(lines, "\r\n"), errors.New("a reply longer than 100 lines")
}
