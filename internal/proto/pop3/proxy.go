package pop3

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/relayq"
)

// The proxy's POP3 application: the greeting reader, and the filters that
// read each response as its command says (one line, or lines up to "."),
// remove STLS from CAPA's and answer a repeated STLS inside TLS.
var proxyApp = &registry.ProxyApp{
	Greeting:    proxyGreeting,
	Down:        proxyDown,
	Up:          proxyUp,
	Unavailable: func(string) string { return "-ERR [SYS/TEMP] Backend unreachable\r\n" },
	TooMany:     "-ERR [IN-USE] Too many connections, try again later\r\n",
	Hello:       func(h string) string { return "+OK " + h + " POP3 ready (TLS to the server by starttls proxy)\r\n" },
	Originate:   true,
}

func proxyGreeting(br *bufio.Reader) ([]byte, bool, error) {
	b, err := relayq.ReadLine(br)
	if err != nil {
		return nil, false, err
	}
	switch {
	case bytes.HasPrefix(b, []byte("+OK")):
		return append([]byte(nil), b...), true, nil
	case bytes.HasPrefix(b, []byte("-ERR")):
		return append([]byte(nil), b...), false, nil
	}
	return nil, false, fmt.Errorf("%w: greeting %q", relayq.ErrBackendProto, relayq.TrimEOL(b))
}

func proxyKind(line []byte) int {
	f := strings.Fields(string(relayq.TrimEOL(line)))
	if len(f) == 0 {
		return relayq.KindSingle
	}
	switch strings.ToUpper(f[0]) {
	case "CAPA":
		return relayq.KindCapa
	case "RETR", "TOP":
		return relayq.KindMulti
	case "LIST", "UIDL", "AUTH":
		if len(f) == 1 {
			return relayq.KindMulti
		}
	}
	return relayq.KindSingle
}

// proxyUp relays client lines, noting each line's kind (SASL responses
// count as single-line exchanges, which they are). Inside TLS it answers
// STLS itself.
func proxyUp(dst io.Writer, src *bufio.Reader, q *relayq.Queue) error {
	midLine := false
	for {
		b, err := src.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if len(b) > 0 {
				dst.Write(b)
			}
			return err
		}
		if err == nil && !midLine && q.Answers() && relayq.IsKeyword(relayq.TrimEOL(b), "STLS") {
			if err := q.Reply("-ERR TLS already active\r\n"); err != nil {
				return err
			}
			continue
		}
		if err == nil {
			if !midLine {
				q.Push(proxyKind(b))
			} else {
				q.Push(relayq.KindSingle)
			}
		}
		midLine = err == bufio.ErrBufferFull
		if _, werr := dst.Write(b); werr != nil {
			return werr
		}
	}
}

// proxyDown reads one response per client line; multi-line ones are
// copied up to the terminating ".", CAPA's without STLS.
func proxyDown(dst *bufio.Writer, src *bufio.Reader, q *relayq.Queue) error {
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
				dot = err == nil && bytes.Equal(relayq.TrimEOL(b), []byte("."))
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
			if err := q.Between(dst, src); err != nil {
				return err
			}
		}
		okStatus, _, err := copyLine(nil)
		if err != nil {
			dst.Flush()
			return err
		}
		kind := q.Pop()
		if kind == relayq.KindSingle || !okStatus {
			continue
		}
		var drop func([]byte) bool
		if kind == relayq.KindCapa {
			drop = func(b []byte) bool { return relayq.IsKeyword(relayq.TrimEOL(b), "STLS") }
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
