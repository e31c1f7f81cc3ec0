package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

func smtpGreeting(br *bufio.Reader) ([]byte, bool, error) {
	var out []byte
	for i := 0; i < maxGreetingLines; i++ {
		b, err := readLine(br)
		if err != nil {
			return nil, false, err
		}
		out = append(out, b...)
		if len(out) > maxGreetingBytes {
			return nil, false, fmt.Errorf("%w: greeting longer than %d bytes", errBackendProto, maxGreetingBytes)
		}
		code, more, _, err := smtp.ParseLine(string(trimEOL(b)))
		if err != nil {
			return nil, false, fmt.Errorf("%w: %v", errBackendProto, err)
		}
		if !more {
			return out, code == 220, nil
		}
	}
	return nil, false, fmt.Errorf("%w: greeting longer than %d lines", errBackendProto, maxGreetingLines)
}

// smtpHandoff sends the client's EHLO (given to the proxy before it chose
// plaintext) to the backend and swallows the reply.
func smtpHandoff(w io.Writer, br *bufio.Reader, c *starttls.Conn) error {
	if c.ClientName == "" {
		return nil
	}
	if _, err := io.WriteString(w, "EHLO "+c.ClientName+"\r\n"); err != nil {
		return err
	}
	_, _, err := smtpGreeting(br) // same shape: one reply
	return err
}

// smtpDown relays replies and removes STARTTLS lines from multi-line 250
// replies (the EHLO reply), rewriting the separators so that the reply
// stays well formed. It holds back at most one line.
func smtpDown(dst *bufio.Writer, src *bufio.Reader, q *cmdQueue) error {
	var held []byte // the previous kept line of a multi-line 250 reply, without EOL
	inReply, midLine := false, false
	count := q.client != nil // replies are counted for smtpUp
	longCode := 0            // the code of a long last line of a reply
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
			} else if err := q.between(dst, src); err != nil {
				return err
			}
		} else if !inReply && !midLine {
			// Fast path: complete lines none of which can start an EHLO-style
			// reply go out in one piece, written from src's buffer straight to
			// the client: one read, one write (one TLS record), no copy.
			buf, _ := src.Peek(src.Buffered())
			if n := smtpRun(buf, q, count); n > 0 {
				if err := q.writeRun(dst, buf[:n]); err != nil {
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
				if code, more, ok := replyCode(b[:min(4, len(b))]); ok && !more {
					longCode = code
				}
			}
			dst.Write(b)
			if count && complete && longCode != 0 {
				q.answered(longCode)
				longCode = 0
			}
			midLine = !complete
			if err != nil && err != bufio.ErrBufferFull {
				dst.Flush()
				return err
			}
			continue
		}
		line := trimEOL(b)
		code, more, ok := replyCode(line)
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
		case isKeywordBytes(line[4:], "STARTTLS"):
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
			q.answered(code)
		}
	}
}

// smtpRun returns the length of the complete lines at the start of buf
// none of which starts with "250-" (they need no filtering), counting (with
// count) the replies that end among them. The common line (anything but a
// reply line) costs one IndexByte and one comparison: only a line starting
// with a digit from 2 to 9 can be a reply line (codes 200 to 999), so only
// such a line is parsed.
func smtpRun(buf []byte, q *cmdQueue, count bool) int {
	n := 0
	for n < len(buf) {
		rest := buf[n:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			break
		}
		if c := rest[0]; c >= '2' && c <= '9' {
			if len(rest) >= 4 && c == '2' && rest[1] == '5' && rest[2] == '0' && rest[3] == '-' {
				break
			}
			if count {
				if code, more, ok := replyCode(trimEOL(rest[:i+1])); ok && !more {
					q.answered(code)
				}
			}
		}
		n += i + 1
	}
	return n
}

// smtpUp relays the client's commands. Inside TLS it answers STARTTLS
// itself, in its turn among the backend's replies; message contents (DATA,
// BDAT) and SASL responses pass unread.
func smtpUp(dst io.Writer, src *bufio.Reader, q *cmdQueue) error {
	return smtpRelayUp(dst, src, q, false)
}

// lmtpUp is smtpUp for LMTP, whose replies to a message are counted per recipient.
func lmtpUp(dst io.Writer, src *bufio.Reader, q *cmdQueue) error {
	return smtpRelayUp(dst, src, q, true)
}

func smtpRelayUp(dst io.Writer, src *bufio.Reader, q *cmdQueue, lmtp bool) error {
	if q.client == nil {
		return copyPlain(dst, src)
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
		line := trimEOL(b)
		if err == nil && isKeywordBytes(line, "STARTTLS") {
			if err := bw.Flush(); err != nil {
				return err
			}
			if err := q.reply("503 5.5.1 TLS already active\r\n"); err != nil {
				return err
			}
			continue
		}
		data, auth, chunk, kind, message := false, false, int64(-1), kindSingle, kindSingle
		if lmtp {
			message = kindMessage
		}
		if err == nil {
			data, auth = isKeywordBytes(line, "DATA"), isKeywordBytes(line, "AUTH")
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
			case isKeywordBytes(line, "MAIL"):
				kind = kindMail
			case isKeywordBytes(line, "RCPT"):
				kind = kindRcpt
			}
		}
		q.push(kind)
		if err := passLine(bw, src, b, err); err != nil {
			bw.Flush()
			return err
		}
		switch {
		case chunk >= 0:
			if err := copyN(bw, src, chunk); err != nil {
				bw.Flush()
				return err
			}
		case data:
			if err := bw.Flush(); err != nil {
				return err
			}
			if code, ok := q.settle(); ok && code == 354 {
				q.push(message)                            // the reply (LMTP: replies) to the whole message
				if err := smtpData(dst, src); err != nil { // bw was flushed above
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
				if code, ok := q.settle(); !ok || code != 334 {
					break
				}
				b, err := src.ReadSlice('\n')
				q.push(kindSingle)
				if err := passLine(bw, src, b, err); err != nil {
					bw.Flush()
					return err
				}
			}
		}
	}
}

// smtpData copies a message up to and including its end line "." (CRLF
// or bare LF). What arrives is written at once as it arrived, up to the end
// line: one read, one write, no line held back; the scan carries its state
// across reads, so an end line cut in two is still found.
func smtpData(dst io.Writer, src *bufio.Reader) error {
	st := dataBOL
	for {
		if src.Buffered() == 0 {
			if _, err := src.Peek(1); err != nil {
				return err
			}
		}
		buf, _ := src.Peek(src.Buffered())
		n, end := scanData(buf, &st)
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
	dataMid   = iota // inside a line
	dataBOL          // at the beginning of a line
	dataDot          // after a "." at the beginning of a line
	dataDotCR        // after ".\r" at the beginning of a line
)

// scanData returns how much of buf belongs to the message (n) and whether
// that includes its end line.
func scanData(buf []byte, st *int) (n int, end bool) {
	for i := 0; i < len(buf); {
		switch *st {
		case dataMid:
			// Look for dots rather than line ends: base64 parts, most of a
			// mail's bytes, have none, so one vectorised IndexByte covers the
			// buffer (bytes.Index of "\n." costs an IndexByte per line).
			j := bytes.IndexByte(buf[i:], '.')
			if j < 0 {
				if buf[len(buf)-1] == '\n' {
					*st = dataBOL
				}
				return len(buf), false
			}
			// A dot at buf[0] in this state follows a byte of the previous
			// read that was not a line end.
			if i += j; i > 0 && buf[i-1] == '\n' {
				*st = dataDot
			}
			i++
		case dataBOL:
			if buf[i] == '.' {
				i++
				*st = dataDot
			} else {
				*st = dataMid
			}
		case dataDot, dataDotCR:
			switch {
			case buf[i] == '\n':
				*st = dataBOL
				return i + 1, true
			case buf[i] == '\r' && *st == dataDot:
				i++
				*st = dataDotCR
			default:
				*st = dataMid
			}
		}
	}
	return len(buf), false
}

// passLine writes b, the first chunk of a line read with ReadSlice (err
// its error), and the rest of the line.
func passLine(dst io.Writer, src *bufio.Reader, b []byte, err error) error {
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

// replyCode parses the code of an SMTP reply line (without EOL) without
// allocating: "250-x" gives 250, more; "250" alone is a last line.
func replyCode(line []byte) (code int, more bool, ok bool) {
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
