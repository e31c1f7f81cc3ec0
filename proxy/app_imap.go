package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

func imapGreeting(br *bufio.Reader) ([]byte, bool, error) {
	b, err := readLine(br)
	if err != nil {
		return nil, false, err
	}
	l := strings.ToUpper(string(trimEOL(b)))
	switch {
	case strings.HasPrefix(l, "* OK"), strings.HasPrefix(l, "* PREAUTH"):
		return append([]byte(nil), b...), true, nil
	case strings.HasPrefix(l, "* BYE"):
		return append([]byte(nil), b...), false, nil
	}
	return nil, false, fmt.Errorf("%w: greeting %q", errBackendProto, trimEOL(b))
}

// imapHidden are the capabilities that make no sense through the proxy
// after TLS: STARTTLS, and LOGINDISABLED (the client is on TLS now).
var imapHidden = []string{"STARTTLS", "LOGINDISABLED"}

// imapFilterCaps rewrites "* CAPABILITY ..." lines and [CAPABILITY ...]
// response codes without the hidden capabilities; other lines are returned as they are.
func imapFilterCaps(line []byte) []byte {
	if len(line) < 2 {
		return line
	}
	if !(line[0] == '*' && line[1] == ' ') && bytes.IndexByte(line[:min(len(line), 64)], '[') < 0 {
		return line // neither an untagged response nor one with a response code
	}
	upper := asciiUpper(line) // same length as line, so its indices are line's
	if bytes.HasPrefix(upper, []byte("* CAPABILITY ")) {
		return append(line[:len("* CAPABILITY")], dropTokens(line[len("* CAPABILITY"):], imapHidden)...)
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
	out = append(out, dropTokens(line[start:end], imapHidden)...)
	return append(out, line[end:]...)
}

// asciiUpper upper-cases ASCII letters only: bytes.ToUpper turns invalid
// UTF-8 into longer replacement runes, and the indices found in its result
// would then not fit the original line.
func asciiUpper(b []byte) []byte {
	out := make([]byte, len(b))
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		}
		out[i] = c
	}
	return out
}

// dropTokens removes space-separated tokens (case-insensitive) and keeps
// a leading space for each token kept.
func dropTokens(b []byte, drop []string) []byte {
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

// imapLiteral returns the size of a literal announced at the end of a line
// ({N}, {N+}, ~{N}).
func imapLiteral(line []byte) (int64, bool) {
	line = trimEOL(line)
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

// imapDown relays responses, filtering capabilities and passing literals
// through untouched.
func imapDown(dst *bufio.Writer, src *bufio.Reader, q *cmdQueue) error {
	midLine := false // inside a line (after a literal or a long chunk)
	var tail []byte  // the end of a long line, for literal detection
	for {
		if src.Buffered() == 0 {
			if midLine {
				if err := dst.Flush(); err != nil {
					return err
				}
			} else if err := q.between(dst, src); err != nil {
				return err
			}
		}
		b, err := src.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			if !midLine { // a last line cut short is filtered like the others
				b = imapFilterCaps(b)
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
			t := trimEOL(b)
			if line := imapFilterCaps(t); len(line) != len(t) {
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
		if n, ok := imapLiteral(b); ok {
			if _, err := io.CopyN(dst, src, n); err != nil {
				dst.Flush()
				return err
			}
			midLine = true
		}
	}
}

// imapUp relays the client's commands. Inside TLS it answers "tag
// STARTTLS" itself (tagged: no need to wait for other responses); literals
// pass unread.
func imapUp(dst io.Writer, src *bufio.Reader, q *cmdQueue) error {
	if q.client == nil {
		return copyPlain(dst, src)
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
		if tag, cmd, _ := bytes.Cut(trimEOL(b), []byte(" ")); !midLine && len(tag) > 0 && isKeywordBytes(cmd, "STARTTLS") {
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := q.reply(string(tag) + " BAD TLS already active\r\n"); err != nil {
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
		if n, ok := imapLiteral(b); ok {
			if err := copyN(bw, src, n); err != nil {
				bw.Flush()
				return err
			}
			midLine = true
		}
	}
}
