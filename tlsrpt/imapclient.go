package tlsrpt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/wire"
)

// imapClient is the little IMAP4rev1 (RFC 3501) a mailbox fetcher needs,
// on top of the library's client half: imaps:// is implicit TLS, imap://
// STARTTLS required (never plaintext LOGIN).
type imapClient struct {
	c       *starttls.Conn
	r       *wire.Reader
	tag     int
	caps    starttls.Capabilities
	timeout time.Duration
}

// ErrIMAP is a tagged NO or BAD reply.
var ErrIMAP = errors.New("imap: command refused")

// imapResponse is one response: its line(s) joined, with literals apart.
type imapResponse struct {
	text     string
	literals [][]byte
}

func dialIMAP(ctx context.Context, implicit bool, addr string, tc *tls.Config) (*imapClient, error) {
	proto := starttls.IMAP
	if implicit {
		proto = starttls.IMAPS
	}
	c, err := starttls.Dial(ctx, proto, addr, &starttls.Config{TLSConfig: tc})
	if err != nil {
		return nil, err
	}
	// The client half has read the greeting (and, with STARTTLS, asked
	// for the capabilities again inside TLS).
	return &imapClient{c: c, r: wire.NewReader(c, 64<<10, -1), caps: c.Capabilities, timeout: 60 * time.Second}, nil
}

func (ic *imapClient) close() { ic.c.Close() }

// readResponse reads one response line with its literals ({n} at a line's
// end announces n bytes, after which the response goes on).
func (ic *imapClient) readResponse() (imapResponse, error) {
	var resp imapResponse
	var text strings.Builder
	for i := 0; i < 64; i++ {
		_ = ic.c.SetReadDeadline(time.Now().Add(ic.timeout))
		line, err := ic.r.ReadLine()
		if err != nil {
			return resp, err
		}
		text.WriteString(line)
		n, ok := literalSize(line)
		if !ok {
			resp.text = text.String()
			return resp, nil
		}
		if n > MaxMessageBytes {
			return resp, fmt.Errorf("imap: literal of %d bytes is over the %d limit", n, MaxMessageBytes)
		}
		lit := make([]byte, n)
		if err := ic.r.ReadFull(lit); err != nil {
			return resp, err
		}
		resp.literals = append(resp.literals, lit)
	}
	return resp, errors.New("imap: response with too many literals")
}

// literalSize finds "{123}" (or the non-synchronizing "{123+}") at the end of a line.
func literalSize(line string) (int, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(line[open+1:len(line)-1], "+"))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// cmd sends one command and returns the untagged responses before its
// tagged OK; NO/BAD give ErrIMAP with the server's text.
func (ic *imapClient) cmd(format string, args ...any) ([]imapResponse, error) {
	ic.tag++
	tag := "t" + strconv.Itoa(ic.tag)
	line := fmt.Sprintf(format, args...)
	_ = ic.c.SetWriteDeadline(time.Now().Add(ic.timeout))
	if _, err := ic.c.Write([]byte(tag + " " + line + "\r\n")); err != nil {
		return nil, err
	}
	return ic.finish(tag, line)
}

func (ic *imapClient) finish(tag, line string) ([]imapResponse, error) {
	var out []imapResponse
	for i := 0; i < 100000; i++ {
		r, err := ic.readResponse()
		if err != nil {
			return out, err
		}
		if strings.HasPrefix(r.text, tag+" ") {
			status, rest, _ := strings.Cut(r.text[len(tag)+1:], " ")
			if strings.EqualFold(status, "OK") {
				return out, nil
			}
			verb, _, _ := strings.Cut(line, " ")
			if strings.EqualFold(verb, "LOGIN") {
				line = "LOGIN ..."
			}
			return out, fmt.Errorf("%w: %s: %s %s", ErrIMAP, clip(line), status, clip(rest))
		}
		out = append(out, r)
	}
	return out, errors.New("imap: too many responses")
}

// quote makes an IMAP quoted string; CR, LF and NUL cannot be quoted.
func quote(s string) (string, error) {
	if strings.ContainsAny(s, "\r\n\x00") {
		return "", errors.New("imap: string with CR, LF or NUL")
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`, nil
}

func (ic *imapClient) login(user, pass string) error {
	u, err := quote(user)
	if err != nil {
		return err
	}
	p, err := quote(pass)
	if err != nil {
		return err
	}
	if _, err := ic.cmd("LOGIN %s %s", u, p); err != nil {
		return err
	}
	// Capabilities change after login; ask again.
	rs, err := ic.cmd("CAPABILITY")
	if err != nil {
		return err
	}
	for _, r := range rs {
		if f := strings.Fields(r.text); len(f) > 2 && strings.EqualFold(f[1], "CAPABILITY") {
			ic.caps = starttls.Capabilities(f[2:])
		}
	}
	return nil
}

func (ic *imapClient) selectBox(box string) error {
	q, err := quote(box)
	if err != nil {
		return err
	}
	_, err = ic.cmd("SELECT %s", q)
	return err
}

// create makes a mailbox, not minding one that exists.
func (ic *imapClient) create(box string) error {
	q, err := quote(box)
	if err != nil {
		return err
	}
	_, err = ic.cmd("CREATE %s", q)
	if err != nil && strings.Contains(strings.ToUpper(err.Error()), "ALREADYEXISTS") {
		return nil
	}
	return err
}

func (ic *imapClient) uidSearchAll() ([]uint32, error) {
	rs, err := ic.cmd("UID SEARCH ALL")
	if err != nil {
		return nil, err
	}
	var uids []uint32
	for _, r := range rs {
		f := strings.Fields(r.text)
		if len(f) < 2 || f[0] != "*" || !strings.EqualFold(f[1], "SEARCH") {
			continue
		}
		for _, s := range f[2:] {
			n, err := strconv.ParseUint(s, 10, 32)
			if err != nil {
				return nil, fmt.Errorf("imap: bad SEARCH reply %q", clip(r.text))
			}
			uids = append(uids, uint32(n))
		}
	}
	return uids, nil
}

// fetch returns the whole message with that UID (BODY.PEEK leaves \Seen alone).
func (ic *imapClient) fetch(uid uint32) ([]byte, error) {
	rs, err := ic.cmd("UID FETCH %d BODY.PEEK[]", uid)
	if err != nil {
		return nil, err
	}
	for _, r := range rs {
		if strings.Contains(strings.ToUpper(r.text), "FETCH") && len(r.literals) == 1 {
			return r.literals[0], nil
		}
	}
	return nil, fmt.Errorf("imap: no body for UID %d", uid)
}

// move moves one message (RFC 6851 MOVE, or COPY, flag \Deleted, expunge).
func (ic *imapClient) move(uid uint32, box string) error {
	q, err := quote(box)
	if err != nil {
		return err
	}
	if ic.caps.Has("MOVE") {
		_, err := ic.cmd("UID MOVE %d %s", uid, q)
		return err
	}
	if _, err := ic.cmd("UID COPY %d %s", uid, q); err != nil {
		return err
	}
	if _, err := ic.cmd(`UID STORE %d +FLAGS.SILENT (\Deleted)`, uid); err != nil {
		return err
	}
	if ic.caps.Has("UIDPLUS") {
		_, err = ic.cmd("UID EXPUNGE %d", uid)
	} else {
		_, err = ic.cmd("EXPUNGE")
	}
	return err
}

// appendMsg stores msg in box (a synchronizing literal).
func (ic *imapClient) appendMsg(box string, msg []byte) error {
	q, err := quote(box)
	if err != nil {
		return err
	}
	ic.tag++
	tag := "t" + strconv.Itoa(ic.tag)
	line := fmt.Sprintf("APPEND %s {%d}", q, len(msg))
	_ = ic.c.SetWriteDeadline(time.Now().Add(ic.timeout))
	if _, err := ic.c.Write([]byte(tag + " " + line + "\r\n")); err != nil {
		return err
	}
	r, err := ic.readResponse()
	if err != nil {
		return err
	}
	if !strings.HasPrefix(r.text, "+") {
		return fmt.Errorf("%w: APPEND: %s", ErrIMAP, clip(r.text))
	}
	if _, err := ic.c.Write(append(append([]byte{}, msg...), '\r', '\n')); err != nil {
		return err
	}
	_, err = ic.finish(tag, line)
	return err
}

func (ic *imapClient) logout() {
	_, _ = ic.cmd("LOGOUT")
	ic.close()
}
