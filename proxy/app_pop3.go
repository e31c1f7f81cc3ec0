package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

func pop3Greeting(br *bufio.Reader) ([]byte, bool, error) {
	b, err := readLine(br)
	if err != nil {
		return nil, false, err
	}
	switch {
	case bytes.HasPrefix(b, []byte("+OK")):
		return append([]byte(nil), b...), true, nil
	case bytes.HasPrefix(b, []byte("-ERR")):
		return append([]byte(nil), b...), false, nil
	}
	return nil, false, fmt.Errorf("%w: greeting %q", errBackendProto, trimEOL(b))
}

func pop3Kind(line []byte) int {
	f := strings.Fields(string(trimEOL(line)))
	if len(f) == 0 {
		return kindSingle
	}
	switch strings.ToUpper(f[0]) {
	case "CAPA":
		return kindCapa
	case "RETR", "TOP":
		return kindMulti
	case "LIST", "UIDL", "AUTH":
		if len(f) == 1 {
			return kindMulti
		}
	}
	return kindSingle
}

// pop3Up relays client lines, noting each line's kind (SASL responses
// count as single-line exchanges, which they are). Inside TLS it answers
// STLS itself.
func pop3Up(dst io.Writer, src *bufio.Reader, q *cmdQueue) error {
	midLine := false
	for {
		b, err := src.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if len(b) > 0 {
				dst.Write(b)
			}
			return err
		}
		if err == nil && !midLine && q.client != nil && isKeywordBytes(trimEOL(b), "STLS") {
			if err := q.reply("-ERR TLS already active\r\n"); err != nil {
				return err
			}
			continue
		}
		if err == nil {
			if !midLine {
				q.push(pop3Kind(b))
			} else {
				q.push(kindSingle)
			}
		}
		midLine = err == bufio.ErrBufferFull
		if _, werr := dst.Write(b); werr != nil {
			return werr
		}
	}
}

// pop3Down reads one response per client line; multi-line ones are
// copied up to the terminating ".", CAPA's without STLS.
func pop3Down(dst *bufio.Writer, src *bufio.Reader, q *cmdQueue) error {
	// copyLine copies one (possibly long) line, unless drop says to drop
	// it, and tells what its first chunk was: +OK, or the lone ".".
	copyLine := func(drop func([]byte) bool) (okStatus, dot bool, err error) {
		first := true
		for {
			b, err := src.ReadSlice('\n')
			if err != nil && err != bufio.ErrBufferFull {
				dst.Write(b)
				return false, false, err
			}
			if first {
				first = false
				okStatus = bytes.HasPrefix(b, []byte("+OK"))
				dot = err == nil && bytes.Equal(trimEOL(b), []byte("."))
				if err == nil && drop != nil && drop(b) {
					return okStatus, dot, nil
				}
			}
			dst.Write(b)
			if err == nil {
				return okStatus, dot, nil
			}
		}
	}
	for {
		if src.Buffered() == 0 {
			if err := q.between(dst, src); err != nil {
				return err
			}
		}
		okStatus, _, err := copyLine(nil)
		if err != nil {
			dst.Flush()
			return err
		}
		kind := q.pop()
		if kind == kindSingle || !okStatus {
			continue
		}
		var drop func([]byte) bool
		if kind == kindCapa {
			drop = func(b []byte) bool { return isKeywordBytes(trimEOL(b), "STLS") }
		}
		for {
			if src.Buffered() == 0 {
				if err := dst.Flush(); err != nil {
					return err
				}
			}
			_, dot, err := copyLine(drop)
			if err != nil {
				dst.Flush()
				return err
			}
			if dot {
				break
			}
		}
	}
}
