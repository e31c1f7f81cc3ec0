package check

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// The probes in this file stay in plaintext on purpose: they send what a
// careless client would send before TLS (a login, a MAIL command) and
// judge the server by its answer. The library's client never sends such
// things, so they speak the protocol themselves on a bare connection.

// probeUser is the login the plaintext probes present: the .invalid
// top-level domain (RFC 2606) cannot hold a real mailbox.
const probeUser = "starttls-check@invalid"

// maxPlainLine bounds one line read by the plaintext probes.
const maxPlainLine = 8192

// plainConn is one bare plaintext session; every read and write has its
// own deadline, and the whole session the context's.
type plainConn struct {
	conn    net.Conn
	br      *bufio.Reader
	timeout time.Duration
	stop    func() bool
}

func (c *run) dialPlain(ctx context.Context) (*plainConn, error) {
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return nil, err
	}
	// A cancelled check must not wait out a read deadline.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	return &plainConn{conn: raw, br: bufio.NewReaderSize(raw, maxPlainLine), timeout: c.o.Timeout, stop: stop}, nil
}

func (p *plainConn) Close() {
	p.stop()
	_ = p.conn.Close()
}

func (p *plainConn) line() (string, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(p.timeout))
	b, err := p.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", fmt.Errorf("a line longer than %d bytes", maxPlainLine)
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// Line and Send let the protocol folders' login probes use the session
// (registry.LineConn).
func (p *plainConn) Line() (string, error) { return p.line() }

// Send writes s and CRLF.
func (p *plainConn) Send(s string) error { return p.send(s) }

func (p *plainConn) send(s string) error {
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	_, err := io.WriteString(p.conn, s+"\r\n")
	return err
}

// codeReply reads one reply of a three-digit-code protocol (SMTP, NNTP)
// and returns its code and its lines joined by CRLF.
func (p *plainConn) codeReply() (int, string, error) { return smtp.ReadReply(p.line) }

// expect sends cmd (unless empty) and requires a reply with code want.
func (p *plainConn) expect(cmd string, want int) error {
	if cmd != "" {
		if err := p.send(cmd); err != nil {
			return err
		}
	}
	code, text, err := p.codeReply()
	if err != nil {
		return err
	}
	if code != want {
		if cmd == "" {
			cmd = "the greeting"
		}
		return fmt.Errorf("%s answered %q", cmd, text)
	}
	return nil
}

// smtpHello reads the greeting and says EHLO (LHLO for LMTP).
func (c *run) smtpHello(p *plainConn) error {
	if err := p.expect("", 220); err != nil {
		return err
	}
	hello := "EHLO "
	if c.info.Base == starttls.LMTP {
		hello = "LHLO "
	}
	return p.expect(hello+firstNonEmpty(c.o.LocalName, "localhost"), 250)
}

// How a server treated a login attempt made before TLS.
const (
	loginUndecided = registry.LoginUndecided // not tested, or the answer does not tell
	loginRefused   = registry.LoginRefused   // refused without looking at the credentials
	loginProcessed = registry.LoginProcessed // the credentials were taken (checked, or the password asked for)
)

// loginOutcome is what the plaintext-login probe saw.
type loginOutcome struct {
	result int
	sent   string // the command, the password shown as <random>
	reply  string
	note   string // why the verdict is undecided
}

func fromLogin(l registry.Login) loginOutcome {
	return loginOutcome{result: l.Result, sent: l.Sent, reply: l.Reply, note: l.Note}
}

// localLogins are the plaintext-login probes that need this package's
// own state: SMTP's hello and its MX policy, the databases' raw packets.
// Every other protocol's login comes from its folder (Probes.Login).
var localLogins = map[starttls.Protocol]func(c *run, p *plainConn) loginOutcome{
	starttls.SMTP:       (*run).smtpLogin,
	starttls.Submission: (*run).smtpLogin,
	starttls.MySQL:      func(_ *run, p *plainConn) loginOutcome { return mysqlLogin(p) },
	starttls.Postgres:   func(_ *run, p *plainConn) loginOutcome { return postgresLogin(p) },
}

// randomPassword is a password no account can have: fresh random bytes
// for every probe, never shown in a report.
func randomPassword() string { return "x" + strings.ToLower(rand.Text()) }

// plaintextLogin tries a login with throwaway credentials before TLS on
// its own connection and records how the server answered; the verdict is
// combined with what the server advertised in plaintextLoginFinding.
func (c *run) plaintextLogin(ctx context.Context) {
	start := time.Now()
	var try func(*plainConn) loginOutcome
	if login := probesOf(c.info.Base).Login; login != nil {
		try = func(p *plainConn) loginOutcome { return fromLogin(login(p, probeUser, randomPassword())) }
	} else if local := localLogins[c.info.Base]; local != nil {
		if (c.info.Base == starttls.SMTP || c.info.Base == starttls.Submission) &&
			!c.submission() && !advertisesAuth(c.r.StartTLS.CapabilitiesBefore) {
			// An MX that offers no AUTH before TLS gets no login attempt:
			// a check of a domain's MX hosts must not look like a
			// password-guessing client to someone else's mail server.
			c.verdict("plaintext-login", "n/a (port 25, no AUTH advertised before TLS)", 0)
			return
		}
		try = func(p *plainConn) loginOutcome { return local(c, p) }
	} else {
		c.verdict("plaintext-login", "n/a", 0)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 4*c.o.Timeout)
	defer cancel()
	p, err := c.dialPlain(ctx)
	if err != nil {
		c.verdict("plaintext-login", "error: "+err.Error(), time.Since(start))
		return
	}
	out := try(p)
	p.Close()
	c.mu.Lock()
	c.login = out
	c.mu.Unlock()
	v := "pass"
	switch out.result {
	case loginProcessed:
		v = "fail"
	case loginUndecided:
		v = "inconclusive: " + firstNonEmpty(out.note, fmt.Sprintf("%s answered %q", out.sent, out.reply))
	}
	c.verdict("plaintext-login", v, time.Since(start))
}

// plaintextLoginFinding judges plaintext login from the active probe and
// from what the server advertised before TLS (advertised, empty when the
// capabilities did not invite a login).
func (c *run) plaintextLoginFinding() {
	adv, out := c.loginAdvertised, c.login
	switch {
	case out.result == loginProcessed:
		ev := fmt.Sprintf("before TLS, %s was answered %q", out.sent, out.reply)
		if adv != "" {
			ev += "; " + adv
		}
		c.add(newFinding("plaintext-login", ev))
	case out.result == loginRefused && adv != "":
		// The server refuses, but its capabilities tell a client to go
		// ahead: the password has crossed the wire before the refusal.
		c.add(newFinding("plaintext-login", fmt.Sprintf("%s, though %s was refused: %q", adv, out.sent, out.reply)).withSeverity(Medium))
		c.mu.Lock()
		c.r.StartTLS.Probes["plaintext-login"] = "fail (refused, but the capabilities invite a login)"
		c.mu.Unlock()
	case adv != "":
		c.add(newFinding("plaintext-login", adv))
	}
}

// saslPlain is an AUTH PLAIN initial response (RFC 4616) for probeUser.
func saslPlain() string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + probeUser + "\x00" + randomPassword()))
}

const saslPlainShown = `<base64 of "\0` + probeUser + `\0<random>">`

func (c *run) smtpLogin(p *plainConn) loginOutcome {
	out := loginOutcome{sent: "AUTH PLAIN " + saslPlainShown}
	if err := c.smtpHello(p); err != nil {
		out.note = err.Error()
		return out
	}
	if err := p.send("AUTH PLAIN " + saslPlain()); err != nil {
		out.note = err.Error()
		return out
	}
	code, text, err := p.codeReply()
	if code == 334 {
		_ = p.send("*") // RFC 4954 §4: cancel the exchange
		_, _, _ = p.codeReply()
	}
	_ = p.send("QUIT")
	if err != nil {
		out.note = "AUTH: " + err.Error()
		return out
	}
	out.reply = text
	out.result = judgeSMTPAuth(code)
	return out
}

// advertisesAuth reports whether EHLO keywords list AUTH (RFC 4954).
func advertisesAuth(caps []string) bool {
	for _, c := range caps {
		if kw, _, _ := strings.Cut(c, " "); strings.EqualFold(kw, "AUTH") {
			return true
		}
	}
	return false
}

// judgeSMTPAuth classifies the answer to AUTH PLAIN before TLS.
func judgeSMTPAuth(code int) int {
	switch code {
	case 235, 334, 535:
		// Accepted, asked for more, or checked and refused: the
		// credentials were taken in the clear.
		return loginProcessed
	case 530, 538, 534, 503, 502, 500, 504:
		// TLS required (530, 538), mechanism too weak here (534), AUTH
		// not enabled or unknown (503, 502, 500, 504).
		return loginRefused
	}
	return loginUndecided
}

// plaintextMail sends MAIL FROM before TLS on a fresh SMTP session: a
// submission server must answer 530 (RFC 8314 §3.3, RFC 3207 §4); port 25
// may accept it, as relaying in plaintext is how opportunistic TLS works.
func (c *run) plaintextMail(ctx context.Context) {
	start := time.Now()
	if c.info.Base != starttls.SMTP && c.info.Base != starttls.Submission {
		c.verdict("plaintext-mail-accepted", "n/a", 0)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 4*c.o.Timeout)
	defer cancel()
	p, err := c.dialPlain(ctx)
	if err != nil {
		c.verdict("plaintext-mail-accepted", "error: "+err.Error(), time.Since(start))
		return
	}
	defer p.Close()
	if err := c.smtpHello(p); err != nil {
		c.verdict("plaintext-mail-accepted", "error: "+err.Error(), time.Since(start))
		return
	}
	const mail = "MAIL FROM:<" + probeUser + ">"
	if err := p.send(mail); err != nil {
		c.verdict("plaintext-mail-accepted", "error: "+err.Error(), time.Since(start))
		return
	}
	code, text, err := p.codeReply()
	// No RCPT, no DATA: nothing is ever delivered.
	_ = p.send("RSET")
	_ = p.send("QUIT")
	switch {
	case err != nil:
		c.verdict("plaintext-mail-accepted", "error: "+err.Error(), time.Since(start))
	case code == 250:
		c.verdict("plaintext-mail-accepted", "fail", time.Since(start))
		f := newFinding("plaintext-mail-accepted", fmt.Sprintf("before TLS, %q was answered %q", mail, text))
		if !c.submission() {
			f = f.withSeverity(Info)
		}
		c.add(f)
	case code == 530 || strings.Contains(text, " 5.7."):
		c.verdict("plaintext-mail-accepted", "pass", time.Since(start))
	default:
		// Refused for another reason (a sender check, a rate limit): that
		// says nothing about TLS.
		c.verdict("plaintext-mail-accepted", fmt.Sprintf("inconclusive: %q was answered %q", mail, text), time.Since(start))
	}
}

// submission reports whether the target is a mail submission service,
// where TLS is not optional (RFC 8314 §3.3).
func (c *run) submission() bool {
	return c.info.Base == starttls.Submission || c.t.Port == 587
}

// startTLSArgument sends STARTTLS with a parameter, which RFC 3207 §4
// answers with 501; a server that starts TLS anyway parses loosely.
func (c *run) startTLSArgument(ctx context.Context) {
	start := time.Now()
	switch c.info.Base {
	case starttls.SMTP, starttls.Submission, starttls.LMTP:
	default:
		c.verdict("starttls-argument-accepted", "n/a", 0)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 3*c.o.Timeout)
	defer cancel()
	p, err := c.dialPlain(ctx)
	if err != nil {
		c.verdict("starttls-argument-accepted", "error: "+err.Error(), time.Since(start))
		return
	}
	defer p.Close()
	if err := c.smtpHello(p); err != nil {
		c.verdict("starttls-argument-accepted", "error: "+err.Error(), time.Since(start))
		return
	}
	const cmd = "STARTTLS starttls-check"
	if err := p.send(cmd); err != nil {
		c.verdict("starttls-argument-accepted", "error: "+err.Error(), time.Since(start))
		return
	}
	code, text, err := p.codeReply()
	switch {
	case err != nil:
		c.verdict("starttls-argument-accepted", "error: "+err.Error(), time.Since(start))
	case code == 220:
		// The server now waits for a ClientHello; closing ends it.
		c.verdict("starttls-argument-accepted", "fail", time.Since(start))
		c.add(newFinding("starttls-argument-accepted", fmt.Sprintf("%q was answered %q", cmd, text)))
	case code == 501:
		_ = p.send("QUIT")
		c.verdict("starttls-argument-accepted", "pass", time.Since(start))
	default:
		_ = p.send("QUIT")
		c.verdict("starttls-argument-accepted", fmt.Sprintf("pass (answered %q, not 501)", text), time.Since(start))
	}
}
