package watch

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/starttls-go/starttls"
)

// ErrMailRejected is a mail server's refusal of an alert; the error text
// holds the command and the reply.
var ErrMailRejected = errors.New("mail server refused the alert")

// mail sends an alert through the route's server: STARTTLS required and
// the certificate verified (starttls.Dial's defaults), AUTH PLAIN when a
// user is configured, then MAIL, RCPT and DATA.
func (a *alerter) mail(ctx context.Context, m *MailTo, al Alert) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	roots, err := loadRoots(m.CA)
	if err != nil {
		return err
	}
	if roots == nil {
		roots = a.w.roots
	}
	cfg := a.w.Config()
	c, err := starttls.Dial(ctx, m.server.Protocol, m.server.Addr(), &starttls.Config{
		TLSConfig: &tls.Config{RootCAs: roots}, LocalName: cfg.LocalName, PhaseTimeout: cfg.Timeout.D()})
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	s := &smtpSession{c: c}
	if m.Username != "" {
		pw, err := os.ReadFile(m.PasswordFile)
		if err != nil {
			return err
		}
		if err := s.auth(sasl.NewPlainClient("", m.Username, strings.TrimRight(string(pw), "\r\n"))); err != nil {
			return err
		}
	}
	if err := s.cmd(250, "MAIL FROM:<%s>", m.From); err != nil {
		return err
	}
	for _, to := range m.To {
		if err := s.cmd(250, "RCPT TO:<%s>", to); err != nil {
			return err
		}
	}
	if err := s.cmd(354, "DATA"); err != nil {
		return err
	}
	if err := s.write(message(m, al, a.w.Now())); err != nil {
		return err
	}
	if err := s.expect(250, "end of data"); err != nil {
		return err
	}
	_ = s.cmd(221, "QUIT")
	return nil
}

type smtpSession struct{ c *starttls.Conn }

func (s *smtpSession) write(b string) error {
	_, err := s.c.Write([]byte(b))
	return err
}

// cmd sends a command and expects the reply code want (251 counts as 250).
func (s *smtpSession) cmd(want int, format string, a ...any) error {
	line := fmt.Sprintf(format, a...)
	if err := s.write(line + "\r\n"); err != nil {
		return err
	}
	return s.expect(want, strings.SplitN(line, ":", 2)[0])
}

func (s *smtpSession) expect(want int, what string) error {
	code, text, err := s.reply()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if code != want && !(want == 250 && code == 251) {
		return fmt.Errorf("%w: %s: %d %s", ErrMailRejected, what, code, text)
	}
	return nil
}

// reply reads one (possibly multi-line) reply.
func (s *smtpSession) reply() (int, string, error) {
	var lines []string
	for range 100 {
		l, err := s.c.ReadLine()
		if err != nil {
			return 0, "", err
		}
		if len(l) < 3 {
			return 0, "", fmt.Errorf("malformed reply %q", l)
		}
		code, err := strconv.Atoi(l[:3])
		if err != nil || code < 200 || code > 599 {
			return 0, "", fmt.Errorf("malformed reply %q", l)
		}
		lines = append(lines, strings.TrimSpace(l[min(4, len(l)):]))
		if len(l) == 3 || l[3] == ' ' {
			return code, strings.Join(lines, " "), nil
		}
		if l[3] != '-' {
			return 0, "", fmt.Errorf("malformed reply %q", l)
		}
	}
	return 0, "", errors.New("reply longer than 100 lines")
}

// auth runs a SASL exchange with an initial response (RFC 4954).
func (s *smtpSession) auth(c sasl.Client) error {
	mech, ir, err := c.Start()
	if err != nil {
		return err
	}
	if !s.c.Capabilities.Has("AUTH") {
		return fmt.Errorf("%w: the server offers no AUTH after STARTTLS", ErrMailRejected)
	}
	cmd := "AUTH " + mech
	if ir != nil {
		cmd += " " + base64.StdEncoding.EncodeToString(ir)
	}
	if err := s.write(cmd + "\r\n"); err != nil {
		return err
	}
	for range 10 {
		code, text, err := s.reply()
		if err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
		switch code {
		case 235:
			return nil
		case 334:
			ch, err := base64.StdEncoding.DecodeString(text)
			if err != nil {
				return fmt.Errorf("AUTH: bad challenge %q", text)
			}
			resp, err := c.Next(ch)
			if err != nil {
				return err
			}
			if err := s.write(base64.StdEncoding.EncodeToString(resp) + "\r\n"); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%w: AUTH %s: %d %s", ErrMailRejected, mech, code, text)
		}
	}
	return errors.New("AUTH: too many challenges")
}

// message builds the alert mail, dot-stuffed and ended with the lone dot.
// Control characters from peers (a hostile certificate subject) become '?'.
func message(m *MailTo, al Alert, now time.Time) string {
	subj := fmt.Sprintf("[starttls watch] %d change(s)", len(al.Changes))
	if len(al.Changes) > 0 {
		subj += ": " + al.Changes[0].Message
	}
	subj = clean(subj)
	if len(subj) > 200 {
		subj = subj[:200] + "..."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\nAuto-Submitted: auto-generated\r\n\r\n",
		m.From, strings.Join(m.To, ", "), subj, now.Format(time.RFC1123Z))
	for _, l := range strings.Split(al.Text(), "\n") {
		l = clean(l)
		if strings.HasPrefix(l, ".") {
			l = "." + l
		}
		b.WriteString(l + "\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}
