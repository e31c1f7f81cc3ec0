package imap

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/relayq"
)

// The proxy's IMAP application: the greeting reader, the response filter
// that hides STARTTLS and LOGINDISABLED from capabilities, and the command
// filter that answers a repeated "tag STARTTLS" inside TLS.
var proxyApp = &registry.ProxyApp{
	Greeting:    proxyGreeting,
	Down:        proxyDown,
	Up:          proxyUp,
	Unavailable: func(string) string { return "* BYE [UNAVAILABLE] Backend unreachable\r\n" },
	TooMany:     "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
	Hello: func(h string) string {
		return "* OK " + h + " IMAP4rev1 ready (TLS to the server by starttls proxy)\r\n"
	},
	Originate: true,
}

func proxyGreeting(br *bufio.Reader) ([]byte, bool, error) {
	b, err := relayq.ReadLine(br)
	if err != nil {
		return nil, false, err
	}
	l := strings.ToUpper(string(relayq.TrimEOL(b)))
	switch {
	case strings.HasPrefix(l, "* OK"), strings.HasPrefix(l, "* PREAUTH"):
		return append([]byte(nil), b...), true, nil
	case strings.HasPrefix(l, "* BYE"):
		return append([]byte(nil), b...), false, nil
	}
	return nil, false, fmt.Errorf("%w: greeting %q", relayq.ErrBackendProto, relayq.TrimEOL(b))
}

// proxyHidden are the capabilities that make no sense through the proxy
// after TLS: STARTTLS, and LOGINDISABLED (the client is on TLS now).
var proxyHidden = []string{"STARTTLS", "LOGINDISABLED"}

// proxyFilterCaps rewrites "* CAPABILITY ..." lines and [CAPABILITY ...]
// response codes without the hidden capabilities; other lines are returned as they are.
func proxyFilterCaps(line []byte) []byte {
	if len(line) < 2 {
		return line
	}
	if !(line[0] == '*' && line[1] == ' ') && bytes.IndexByte(line[:min(len(line), 64)], '[') < 0 {
		return line // neither an untagged response nor one with a response code
	}
	upper := proxyASCIIUpper(line) // same length as line, so its indices are line's
	if bytes.HasPrefix(upper, []byte("* CAPABILITY ")) {
		return append(line[:len("* CAPABILITY")], proxyDropTokens(line[len("* CAPABILITY"):], proxyHidden)...)
	}
	i := bytes.Index(upper, []byte("[CAPABILITY "))
	if i < 0 || i > 64 { // the code follows the tag and status right away
		return line
	}
	start := i + len("[CAPABILITY")
	end := bytes.IndexByte(line[start:], ']')
	if end < 0 {
		return line
	}
	end += start
	out := append([]byte(nil), line[:start]...)
	out = append(out, proxyDropTokens(line[start:end], proxyHidden)...)
	return append(out, line[end:]...)
}

// proxyASCIIUpper upper-cases ASCII letters only: bytes.ToUpper turns invalid
// UTF-8 into longer replacement runes, and the indices found in its result
// would then not fit the original line.
func proxyASCIIUpper(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// proxyDropTokens removes space-separated tokens (case-insensitive) and keeps
// a leading space for each token kept.
func proxyDropTokens(b []byte, drop []string) []byte {
	var out []byte
	for _, tok := range bytes.Fields(b) {
		hidden := false
		for _, d := range drop {
			if bytes.EqualFold(tok, []byte(d)) {
				hidden = true
			}
		}
		if !hidden {
			out = append(out, ' ')
			out = append(out, tok...)
		}
	}
	return out
}

// proxyLiteral returns the size of a literal announced at the end of a line
// ({N}, {N+}, ~{N}).
func proxyLiteral(line []byte) (int64, bool) {
	line = relayq.TrimEOL(line)
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 || len(line)-open > 24 {
		return 0, false
	}
	digits := bytes.TrimSuffix(line[open+1:len(line)-1], []byte("+"))
	if len(digits) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
		if n > 1<<40 {
			return 0, false
		}
	}
	return n, true
}

// proxyDown relays responses, filtering capabilities and passing literals
// through untouched.
func proxyDown(dst *bufio.Writer, src *bufio.Reader, q *relayq.Queue) error {
	midLine := false // inside a line (after a literal or a long chunk)
	var tail []byte  // the end of a long line, for literal detection
	for {
		if src.Buffered() == 0 {
			if midLine {
				if err := dst.Flush(); err != nil {
					return err
				}
			} else if err := q.Between(dst, src); err != nil {
				return err
			}
		}
		b, err := src.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if !midLine { // a last line cut short is filtered like the others
				b = proxyFilterCaps(b)
			}
			dst.Write(b)
			dst.Flush()
			return err
		}
		if err == bufio.ErrBufferFull {
			dst.Write(b)
			midLine = true
			tail = append(tail[:0], b[max(0, len(b)-24):]...)
			continue
		}
		if !midLine {
			t := relayq.TrimEOL(b)
			if line := proxyFilterCaps(t); len(line) != len(t) {
				dst.Write(line)
				dst.WriteString("\r\n")
			} else {
				dst.Write(b)
			}
		} else {
			dst.Write(b)
			b = append(tail, b...)
		}
		midLine = false
		tail = tail[:0]
		if n, ok := proxyLiteral(b); ok {
			if _, err := io.CopyN(dst, src, n); err != nil {
				dst.Flush()
				return err
			}
			midLine = true
		}
	}
}

// proxyUp relays the client's commands. Inside TLS it answers "tag
// STARTTLS" itself (tagged: no need to wait for other responses); literals
// pass unread.
func proxyUp(dst io.Writer, src *bufio.Reader, q *relayq.Queue) error {
	if !q.Answers() {
		return relayq.CopyPlain(dst, src)
	}
	bw := bufio.NewWriterSize(dst, 16<<10)
	midLine := false // inside a line (after a literal or a long chunk)
	var tail []byte  // the end of a long line, for literal detection
	for {
		if src.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		b, err := src.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			bw.Write(b)
			bw.Flush()
			return err
		}
		if err == bufio.ErrBufferFull {
			bw.Write(b)
			midLine = true
			tail = append(tail[:0], b[max(0, len(b)-24):]...)
			continue
		}
		if tag, cmd, _ := bytes.Cut(relayq.TrimEOL(b), []byte(" ")); !midLine && len(tag) > 0 && relayq.IsKeyword(cmd, "STARTTLS") {
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := q.Reply(string(tag) + " BAD TLS already active\r\n"); err != nil {
				return err
			}
			continue
		}
		bw.Write(b)
		if midLine {
			b = append(tail, b...)
		}
		midLine = false
		tail = tail[:0]
		if n, ok := proxyLiteral(b); ok {
			if err := relayq.CopyN(bw, src, n); err != nil {
				bw.Flush()
				return err
			}
			midLine = true
		}
	}
}
