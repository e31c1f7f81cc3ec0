package http

import (
	"io"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// An RFC 2817 server answers the OPTIONS request that asked for the
// upgrade inside TLS; check reads past that answer.
var loginProbes = &registry.ConnProbes{OwnResponse: loginOwnResponse, QuoteAnswer: true}

// loginOwnResponse reads what an RFC 2817 server sends first inside TLS,
// by §3.3 its response to the OPTIONS request that asked for the upgrade:
// interim 1xx responses are skipped, and the body by its Content-Length,
// so that body lines are not taken for a second response (a response to
// a request pipelined in plaintext).
func loginOwnResponse(c registry.LineReader) error {
	for i := 0; i < 10; i++ {
		status, err := c.ReadLine()
		if err != nil {
			return err
		}
		length := 0
		for j := 0; j < 100; j++ {
			line, err := c.ReadLine()
			if err != nil {
				return err
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
			if _, err := io.CopyN(io.Discard, c, int64(length)); err != nil {
				return err
			}
		}
		break
	}
	return nil
}
