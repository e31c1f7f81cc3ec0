package check

import (
	"io"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls"
)

// httpPipelinedAnswer reads what an RFC 2817 server sends inside TLS
// after the upgrade: first, by §3.3, its response to the OPTIONS request
// that asked for the upgrade (interim 1xx responses skipped, the body
// skipped by its Content-Length so that body lines are not taken for a
// second response), then, within the deadline, anything more: a response
// to the request pipelined in plaintext. It returns the lines of that
// second response, nil when there is none.
func httpPipelinedAnswer(conn *starttls.Conn) []string {
	for i := 0; i < 10; i++ {
		status, err := conn.ReadLine()
		if err != nil {
			return nil
		}
		length := 0
		for j := 0; j < 100; j++ {
			line, err := conn.ReadLine()
			if err != nil {
				return nil
			}
			if line == "" {
				break
			}
			if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
				length, _ = strconv.Atoi(strings.TrimSpace(v))
			}
		}
		if _, rest, _ := strings.Cut(status, " "); strings.HasPrefix(rest, "1") {
			continue
		}
		if length > 0 && length <= 1<<16 {
			if _, err := io.CopyN(io.Discard, conn, int64(length)); err != nil {
				return nil
			}
		}
		break
	}
	return linesUntilDeadline(conn, nil)
}
