package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// app is what the proxy knows of one base protocol after the upgrade.
type app struct {
	// greeting reads the backend's greeting and returns its bytes; ok is
	// false when the backend refused the session (its reply is still
	// forwarded to the client, then the session ends). Nil: the client
	// speaks first.
	greeting func(br *bufio.Reader) (raw []byte, ok bool, err error)
	// down copies the backend's stream to the client, removing STARTTLS
	// from capability replies. Nil: a plain copy.
	down func(dst *bufio.Writer, src *bufio.Reader, q *cmdQueue) error
	// up copies the client's stream to the backend, noting commands in q
	// for down; inside TLS it answers a repeated upgrade command itself
	// (q.reply) and never forwards it. Nil: a plain copy.
	up func(dst io.Writer, src *bufio.Reader, q *cmdQueue) error
	// unavailable is the client's clean error when the backend cannot be
	// reached (in the protocol's words); "" closes silently.
	unavailable func(host string) string
	// tooMany is the plaintext answer to a client over a connection limit.
	tooMany string
	// hello is the greeting a plaintext client gets in originate mode.
	hello func(host string) string
	// handoff replays what the backend must know when an Optional-policy
	// session goes on in plaintext (SMTP: the client's EHLO).
	handoff func(w io.Writer, br *bufio.Reader, c *starttls.Conn) error
	// originate: the mode is supported.
	originate bool
	// noStartTLS: the protocol has no STARTTLS dialogue in the proxy.
	noStartTLS bool
}

// maxGreeting bounds a backend greeting.
const (
	maxGreetingLines = 100
	maxGreetingBytes = 64 << 10
)

var apps = map[starttls.Protocol]*app{}

func init() {
	smtp := &app{
		greeting:    smtpGreeting,
		down:        smtpDown,
		up:          smtpUp,
		unavailable: func(h string) string { return "421 4.3.0 " + h + " Service not available, backend unreachable\r\n" },
		tooMany:     "421 4.7.0 Too many connections, try again later\r\n",
		hello:       func(h string) string { return "220 " + h + " ESMTP ready (TLS to the server by starttls proxy)\r\n" },
		handoff:     smtpHandoff,
		originate:   true,
	}
	imap := &app{
		greeting:    imapGreeting,
		down:        imapDown,
		up:          imapUp,
		unavailable: func(string) string { return "* BYE [UNAVAILABLE] Backend unreachable\r\n" },
		tooMany:     "* BYE [UNAVAILABLE] Too many connections, try again later\r\n",
		hello: func(h string) string {
			return "* OK " + h + " IMAP4rev1 ready (TLS to the server by starttls proxy)\r\n"
		},
		originate: true,
	}
	pop3 := &app{
		greeting:    pop3Greeting,
		down:        pop3Down,
		up:          pop3Up,
		unavailable: func(string) string { return "-ERR [SYS/TEMP] Backend unreachable\r\n" },
		tooMany:     "-ERR [IN-USE] Too many connections, try again later\r\n",
		hello:       func(h string) string { return "+OK " + h + " POP3 ready (TLS to the server by starttls proxy)\r\n" },
		originate:   true,
	}
	// Binary protocols whose STARTTLS is the first exchange: after it the
	// client's first message (StartupMessage, LDAP request) starts the
	// backend's session, so the bytes are relayed as they are.
	raw := &app{originate: true}
	lmtp := *smtp
	lmtp.up = lmtpUp
	apps["smtp"], apps["submission"], apps["lmtp"] = smtp, smtp, &lmtp
	apps["imap"] = imap
	apps["pop3"] = pop3
	apps["postgres"] = raw
	apps["ldap"] = raw
}

func appFor(base starttls.Protocol) *app {
	a := apps[base]
	if a == nil {
		return nil
	}
	if _, err := starttls.Lookup(base); err != nil {
		return nil
	}
	return a
}

// SupportedProtocols lists the protocols the proxy relays (those
// registered in the starttls package), with their implicit variants.
func SupportedProtocols() string {
	var out []string
	for _, p := range starttls.Protocols() {
		info, err := starttls.Lookup(p)
		if err == nil && appFor(info.Base) != nil {
			out = append(out, string(p))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// errBackendProto marks a backend that does not speak the protocol.
var errBackendProto = errors.New("backend protocol error")

// readLine reads one complete line for the dialogue parts (greetings),
// bounded by the reader's buffer.
func readLine(br *bufio.Reader) ([]byte, error) {
	b, err := br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		return nil, fmt.Errorf("%w: line longer than %d bytes", errBackendProto, br.Size())
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	return b, nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// ---- SMTP

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

// copyN copies n bytes, flushing dst before src blocks (the client of a
// synchronising IMAP literal waits for the backend's go-ahead).
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64) error {
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

// isKeywordBytes reports whether the first word of text is kw (ASCII, case-insensitive).
func isKeywordBytes(text []byte, kw string) bool {
	text = bytes.TrimLeft(text, " \t")
	if len(text) < len(kw) || !bytes.EqualFold(text[:len(kw)], []byte(kw)) {
		return false
	}
	return len(text) == len(kw) || text[len(kw)] == ' ' || text[len(kw)] == '\t'
}

// isKeyword reports whether the first word of text is kw (case-insensitive).
func isKeyword(text, kw string) bool { return isKeywordBytes([]byte(text), kw) }

// ---- IMAP

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
	upper := bytes.ToUpper(line)
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

// ---- POP3

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

// POP3 command kinds, for reading the matching response.
const (
	kindSingle = iota
	kindMulti  // +OK is followed by lines up to "."
	kindCapa   // as kindMulti; STLS is removed
	// LMTP (counted replies): a message has one per accepted recipient.
	kindMail
	kindRcpt
	kindMessage
)

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
