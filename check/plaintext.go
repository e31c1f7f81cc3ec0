package check

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
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
// own deadline, and the whole session the context's. It is the
// registry.ProbeConn the protocol folders' login probes get.
type plainConn struct {
	conn      net.Conn
	br        *bufio.Reader
	timeout   time.Duration
	stop      func() bool
	localName string
}

func (c *run) dialPlain(ctx context.Context) (*plainConn, error) {
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return nil, err
	}
	// A cancelled check must not wait out a read deadline.
	stop := context.AfterFunc(ctx, func() { raw.Close() })
	return &plainConn{conn: raw, br: bufio.NewReaderSize(raw, maxPlainLine), timeout: c.o.Timeout, stop: stop,
		localName: firstNonEmpty(c.o.LocalName, "localhost")}, nil
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

// ReadLine is Line for a TLS session (registry.TLSConn).
func (p *plainConn) ReadLine() (string, error) { return p.line() }

// Read reads from the session's buffer (registry.ProbeConn).
func (p *plainConn) Read(b []byte) (int, error) {
	_ = p.conn.SetReadDeadline(time.Now().Add(p.timeout))
	return p.br.Read(b)
}

// Write writes b as it is (registry.ProbeConn).
func (p *plainConn) Write(b []byte) (int, error) {
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	return p.conn.Write(b)
}

// LocalName is the EHLO name (registry.ProbeConn).
func (p *plainConn) LocalName() string { return p.localName }

// Send writes s and CRLF.
func (p *plainConn) Send(s string) error { return p.send(s) }

func (p *plainConn) send(s string) error {
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	_, err := io.WriteString(p.conn, s+"\r\n")
	return err
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
	} else if l := connProbesOf(c.info.Base); l.Login != nil {
		if l.LoginSkip != nil {
			if why := l.LoginSkip(c.r.StartTLS.CapabilitiesBefore, c.submission()); why != "" {
				c.verdict("plaintext-login", "n/a ("+why+")", 0)
				return
			}
		}
		try = func(p *plainConn) loginOutcome { return fromLogin(l.Login(p, probeUser, randomPassword())) }
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

// plainProbe runs the probe name of the protocol's folder
// (registry.ConnProbes.Plain) on a fresh plaintext session, or reports
// "n/a" when the folder lists none of that name.
func (c *run) plainProbe(name string) func(context.Context) {
	return func(ctx context.Context) {
		start := time.Now()
		plain := connProbesOf(c.info.Base).Plain
		i := slices.IndexFunc(plain, func(p registry.PlainProbe) bool { return p.Name == name })
		if i < 0 {
			c.verdict(name, "n/a", 0)
			return
		}
		probe := plain[i]
		ctx, cancel := context.WithTimeout(ctx, time.Duration(probe.Rounds)*c.o.Timeout)
		defer cancel()
		p, err := c.dialPlain(ctx)
		if err != nil {
			c.verdict(name, "error: "+err.Error(), time.Since(start))
			return
		}
		defer p.Close()
		v, evidence := probe.Run(p)
		c.verdict(name, v, time.Since(start))
		if evidence == "" {
			return
		}
		f := newFinding(name, evidence)
		if name == "plaintext-mail-accepted" && !c.submission() {
			// Port 25 relays in plaintext by design (opportunistic TLS).
			f = f.withSeverity(Info)
		}
		c.add(f)
	}
}

// submission reports whether the target is a mail submission service,
// where TLS is not optional (RFC 8314 §3.3).
func (c *run) submission() bool {
	return c.info.Base == starttls.Submission || c.t.Port == 587
}
