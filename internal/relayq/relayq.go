// Package relayq is the machinery the proxy's per-protocol filters share
// (internal/proto/NAME/proxy*.go): the queue that carries the client's
// commands from the up direction to the down one, and the bounded line
// and copy helpers both directions use. The proxy drives the filters; the
// protocol folders write them; neither imports the other, both import
// this package.
//
// It imports nothing of the module, so that internal/proto/registry can
// name its types without an import cycle.
package relayq

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// ErrBackendProto marks a backend that does not speak the protocol.
var ErrBackendProto = errors.New("backend protocol error")

// ReadLine reads one complete line for the dialogue parts (greetings),
// bounded by the reader's buffer.
func ReadLine(br *bufio.Reader) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: line longer than %d bytes", ErrBackendProto, br.Size())
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

// TrimEOL removes a trailing LF and then a CR.
func TrimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// CopyN copies n bytes, flushing dst before src blocks (the client of a
// synchronising IMAP literal waits for the backend's go-ahead).
func CopyN(dst *bufio.Writer, src *bufio.Reader, n int64) error {
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

// IsKeyword reports whether the first word of text is kw (ASCII, case-insensitive).
func IsKeyword(text []byte, kw string) bool {
	text = bytes.TrimLeft(text, " \t")
	if len(text) < len(kw) || !bytes.EqualFold(text[:len(kw)], []byte(kw)) {
		return false
	}
	return len(text) == len(kw) || text[len(kw)] == ' ' || text[len(kw)] == '\t'
}

// Relay buffers: a TLS record holds at most 16 KiB.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// CopyPlain copies until EOF or an error; EOF is not an error.
func CopyPlain(dst io.Writer, src io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	return err
}
