// Package relayqtest runs the proxy's filters on strings, for the tests
// of internal/proto/NAME/proxy*.go.
package relayqtest

import (
	"bufio"
	"bytes"
	"strings"

	"github.com/starttls-go/starttls/internal/relayq"
)

// Down runs the down filter f over in, read through a 64-byte buffer so
// that long lines come in pieces, and returns what it wrote. A nil q is
// a fresh queue outside TLS.
func Down(f func(*bufio.Writer, *bufio.Reader, *relayq.Queue) error, in string, q *relayq.Queue) string {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 4096)
	br := bufio.NewReaderSize(strings.NewReader(in), 64)
	if q == nil {
		q = relayq.NewQueue(nil, nil)
	}
	_ = f(bw, br, q)
	bw.Flush()
	return out.String()
}
