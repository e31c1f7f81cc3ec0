package smtp

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/relayq"
)

// The proxy's SMTP application: the greeting reader, the EHLO filter
// that removes STARTTLS from the backend's replies, and the command
// filter that answers a repeated STARTTLS inside TLS. LMTP is the same
// but for the replies to a message, one per accepted recipient.
var proxyApp = &registry.ProxyApp{
	Greeting:    proxyGreeting,
	Down:        proxyDown,
	Up:          proxyUp,
	Unavailable: func(h string) string { return "421 4.3.0 " + h + " Service not available, backend unreachable\r\n" },
	TooMany:     "421 4.7.0 Too many connections, try again later\r\n",
	Hello:       func(h string) string { return "220 " + h + " ESMTP ready (TLS to the server by starttls proxy)\r\n" },
	Handoff:     proxyHandoff,
	Originate:   true,
}

// proxyLMTPApp is proxyApp with LMTP's LHLO in the up filter.
func proxyLMTPApp() *registry.ProxyApp {
	a := *proxyApp
	a.Up = proxyLMTPUp
	return &a
}

// A backend greeting is bounded.
const (
	proxyMaxGreetingLines = 100
	proxyMaxGreetingBytes = 64 << 10
)

func proxyGreeting(br *bufio.Reader) ([]byte, bool, error) {
	var out []byte
	for i := 0; i < proxyMaxGreetingLines; i++ {
		b, err := relayq.ReadLine(br)
		if err != nil {
			return nil, false, err
		}
		out = append(out, b...)
		if len(out) > proxyMaxGreetingBytes {
			return nil, false, fmt.Errorf("%w: greeting longer than %d bytes", relayq.ErrBackendProto, proxyMaxGreetingBytes)
		}
		code, more, _, err := ParseLine(string(relayq.TrimEOL(b)))
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", relayq.ErrBackendProto, err)
		}
		if !more {
			return out, code == 220, nil
		}
	}
	return nil, false, fmt.Errorf("%w: greeting longer than %d lines", relayq.ErrBackendProto, proxyMaxGreetingLines)
}

// proxyHandoff sends the client's EHLO (given to the proxy before it chose
// plaintext) to the backend and swallows the reply.
func proxyHandoff(w io.Writer, br *bufio.Reader, clientName string) error {
	if clientName == "" {
		return nil
	}
	if _, err := io.WriteString(w, "EHLO "+clientName+"\r\n"); err != nil {
		return err
	}
	_, _, err := proxyGreeting(br) // same shape: one reply
	return err
}

// proxyDown relays replies and removes STARTTLS lines from multi-line 250
// replies (the EHLO reply), rewriting the separators so that the reply
// stays well formed. It holds back at most one line.
func proxyDown(dst *bufio.Writer, src *bufio.Reader, q *relayq.Queue) error {
	var held []byte // the previous kept line of a multi-line 250 reply, without EOL
	inReply, midLine := false, false
	count := q.Answers() // replies are counted for proxyUp
	longCode := 0        // the code of a long last line of a reply
	writeHeld := func(sep byte) {
		held[3] = sep
		dst.Write(held)
		dst.WriteString("\r\n")
		held = held[:0]
	}
	for {
		if src.Buffered() == 0 {
			if inReply || midLine {
				if err := dst.Flush(); err != nil {
					return err
				}
			} else if err := q.Between(dst, src); err != nil {
				return err
			}
		} else if !inReply && !midLine {
			// Fast path: complete lines none of which can start an EHLO-style
			// reply go out in one piece, written from src's buffer straight to
			// the client: one read, one write (one TLS record), no copy.
			buf, _ := src.Peek(src.Buffered())
			if n := proxyRun(buf, q, count); n > 0 {
				if err := q.WriteRun(dst, buf[:n]); err != nil {
					return err
				}
				_, _ = src.Discard(n)
				continue
			}
			// A line cut by the end of what arrived: read more behind it
			// rather than pass its head alone (a small record, a syscall),
			// having sent what is pending first.
			if len(buf) < src.Size() && bytes.IndexByte(buf, '\n') < 0 {
				if err := dst.Flush(); err != nil {
					return err
				}
				if _, err := src.Peek(len(buf) + 1); err == nil {
					continue
				}
			}
		}
		b, err := src.ReadSlice('\n')
		complete := err == nil
		if err != nil && err != bufio.ErrBufferFull && len(b) == 0 {
			if inReply {
				writeHeld(held[3])
			}
			dst.Flush()
			return err
		}
		if !complete || midLine {
			// A long line, or the rest of one: not a reply line worth parsing.
			if inReply {
				writeHeld(held[3])
				inReply = false
			}
			if count && !midLine {
				if code, more, ok := proxyReplyCode(b[:min(4, len(b))]); ok && !more {
					longCode = code
				}
			}
			dst.Write(b)
			if count && complete && longCode != 0 {
				q.Answered(longCode)
				longCode = 0
			}
			midLine = !complete
			if err != nil && err != bufio.ErrBufferFull {
				dst.Flush()
				return err
			}
			continue
		}
		line := relayq.TrimEOL(b)
		code, more, ok := proxyReplyCode(line)
		if inReply && (!ok || code != 250 || len(line) < 4) {
			// Not a continuation of the reply: it ends as the backend sent it.
			writeHeld(held[3])
			inReply = false
		}
		switch {
		case !ok:
			dst.Write(b)
		case !inReply && code == 250 && more:
			held = append(held[:0], line...)
			inReply = true
		case !inReply:
			dst.Write(b)
		case relayq.IsKeyword(line[4:], "STARTTLS"):
			if !more {
				writeHeld(' ')
				inReply = false
			}
		default:
			writeHeld('-')
			held = append(held, line...)
			if !more {
				writeHeld(' ')
				inReply = false
			}
		}
		if count && ok && !more {
			q.Answered(code)
		}
	}
}

// proxyRun returns the length of the complete lines at the start of buf
// none of which starts with "250-" (they need no filtering), counting (with
// count) the replies that end among them. Only a line starting with a digit
// from 2 to 9 can be a reply line (codes 200 to 999), so only such a line
// is looked at: nextReplyStart skips the others in one pass.
func proxyRun(buf []byte, q *relayq.Queue, count bool) int {
	end := bytes.LastIndexByte(buf, '\n') + 1 // the complete lines
	for n := 0; n < end; {
		rest := buf[n:end]
		if c := rest[0]; c >= '2' && c <= '9' {
			if len(rest) >= 4 && c == '2' && rest[1] == '5' && rest[2] == '0' && rest[3] == '-' {
				return n
			}
			if count {
				i := bytes.IndexByte(rest, '\n')
				if code, more, ok := proxyReplyCode(relayq.TrimEOL(rest[:i+1])); ok && !more {
					q.Answered(code)
				}
			}
		}
		j := nextReplyStart(rest)
		if j < 0 {
			break
		}
		n += j
	}
	return end
}

// proxyUp relays the client's commands. Inside TLS it answers STARTTLS
// itself, in its turn among the backend's replies; message contents (DATA,
// BDAT) and SASL responses pass unread.
func proxyUp(dst io.Writer, src *bufio.Reader, q *relayq.Queue) error {
	return proxyRelayUp(dst, src, q, false)
}

// proxyLMTPUp is proxyUp for LMTP, whose replies to a message are counted per recipient.
func proxyLMTPUp(dst io.Writer, src *bufio.Reader, q *relayq.Queue) error {
	return proxyRelayUp(dst, src, q, true)
}

func proxyRelayUp(dst io.Writer, src *bufio.Reader, q *relayq.Queue, lmtp bool) error {
	if !q.Answers() {
		return relayq.CopyPlain(dst, src)
	}
	// Commands only: message bodies go from src's buffer straight to dst.
	bw := bufio.NewWriterSize(dst, 4<<10)
	for {
		if src.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return err
			}
		}
		b, err := src.ReadSlice('\n')
		line := relayq.TrimEOL(b)
		if err == nil && relayq.IsKeyword(line, "STARTTLS") {
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := q.Reply("503 5.5.1 TLS already active\r\n"); err != nil {
				return err
			}
			continue
		}
		data, auth, chunk, kind, message := false, false, int64(-1), relayq.KindSingle, relayq.KindSingle
		if lmtp {
			message = relayq.KindMessage
		}
		if err == nil {
			data, auth = relayq.IsKeyword(line, "DATA"), relayq.IsKeyword(line, "AUTH")
			f := bytes.Fields(line)
			if len(f) >= 2 && bytes.EqualFold(f[0], []byte("BDAT")) {
				if n, perr := strconv.ParseInt(string(f[1]), 10, 64); perr == nil && n >= 0 {
					chunk = n
				}
				if len(f) >= 3 && bytes.EqualFold(f[2], []byte("LAST")) {
					kind = message
				}
			}
			switch {
			case !lmtp:
			case relayq.IsKeyword(line, "MAIL"):
				kind = relayq.KindMail
			case relayq.IsKeyword(line, "RCPT"):
				kind = relayq.KindRcpt
			}
		}
		q.Push(kind)
		if err := proxyPassLine(bw, src, b, err); err != nil {
			bw.Flush()
			return err
		}
		switch {
		case chunk >= 0:
			if err := relayq.CopyN(bw, src, chunk); err != nil {
				bw.Flush()
				return err
			}
		case data:
			if err := bw.Flush(); err != nil {
				return err
			}
			if code, ok := q.Settle(); ok && code == 354 {
				q.Push(message)                             // the reply (LMTP: replies) to the whole message
				if err := proxyData(dst, src); err != nil { // bw was flushed above
					bw.Flush()
					return err
				}
			}
		case auth:
			// A SASL response follows each 334 challenge.
			for {
				if err := bw.Flush(); err != nil {
					return err
				}
				if code, ok := q.Settle(); !ok || code != 334 {
					break
				}
				b, err := src.ReadSlice('\n')
				q.Push(relayq.KindSingle)
				if err := proxyPassLine(bw, src, b, err); err != nil {
					bw.Flush()
					return err
				}
			}
		}
	}
}

// proxyData copies a message up to and including its end line "." (CRLF
// or bare LF). What arrives is written at once as it arrived, up to the end
// line: one read, one write, no line held back; the scan carries its state
// across reads, so an end line cut in two is still found.
func proxyData(dst io.Writer, src *bufio.Reader) error {
	st := proxyDataBOL
	for {
		if src.Buffered() == 0 {
			if _, err := src.Peek(1); err != nil {
				return err
			}
		}
		buf, _ := src.Peek(src.Buffered())
		n, end := proxyScanData(buf, &st)
		if _, err := dst.Write(buf[:n]); err != nil {
			return err
		}
		_, _ = src.Discard(n)
		if end {
			return nil
		}
	}
}

// Where a message body's scan stands between reads.
const (
	proxyDataMid   = iota // inside a line
	proxyDataBOL          // at the beginning of a line
	proxyDataDot          // after a "." at the beginning of a line
	proxyDataDotCR        // after ".\r" at the beginning of a line
)

// proxyScanData returns how much of buf belongs to the message (n) and whether
// that includes its end line.
func proxyScanData(buf []byte, st *int) (n int, end bool) {
	for i := 0; i < len(buf); {
		switch *st {
		case proxyDataMid:
			// Look for dots rather than line ends: base64 parts, most of a
			// mail's bytes, have none, so one vectorised IndexByte covers the
			// buffer (bytes.Index of "\n." costs an IndexByte per line).
			j := bytes.IndexByte(buf[i:], '.')
			if j < 0 {
				if buf[len(buf)-1] == '\n' {
					*st = proxyDataBOL
				}
				return len(buf), false
			}
			// A dot at buf[0] in this state follows a byte of the previous
			// read that was not a line end.
			if i += j; i > 0 && buf[i-1] == '\n' {
				*st = proxyDataDot
			}
			i++
		case proxyDataBOL:
			if buf[i] == '.' {
				i++
				*st = proxyDataDot
			} else {
				*st = proxyDataMid
			}
		case proxyDataDot, proxyDataDotCR:
			switch {
			case buf[i] == '\n':
				*st = proxyDataBOL
				return i + 1, true
			case buf[i] == '\r' && *st == proxyDataDot:
				i++
				*st = proxyDataDotCR
			default:
				*st = proxyDataMid
			}
		}
	}
	return len(buf), false
}

// proxyPassLine writes b, the first chunk of a line read with ReadSlice (err
// its error), and the rest of the line.
func proxyPassLine(dst io.Writer, src *bufio.Reader, b []byte, err error) error {
	for {
		if _, werr := dst.Write(b); werr != nil {
			return werr
		}
		if err != bufio.ErrBufferFull {
			return err
		}
		b, err = src.ReadSlice('\n')
	}
}

// proxyReplyCode parses the code of an SMTP reply line (without EOL) without
// allocating: "250-x" gives 250, more; "250" alone is a last line.
func proxyReplyCode(line []byte) (code int, more bool, ok bool) {
	if len(line) < 3 {
		return 0, false, false
	}
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return 0, false, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 {
		return 0, false, false
	}
	if len(line) == 3 {
		return code, false, true
	}
	switch line[3] {
	case '-':
		return code, true, true
	case ' ':
		return code, false, true
	}
	return 0, false, false
}
