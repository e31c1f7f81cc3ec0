package smtp

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// loginProbes is what check needs of SMTP and submission (hello EHLO)
// and LMTP (LHLO) beyond Probes: SMTP and submission try AUTH PLAIN and
// MAIL before TLS, LMTP takes no login and no mail there. All three get
// STARTTLS with an argument and the state-reset probe, and judge the
// partial-line probe by the reply to our hello.
func loginProbes(hello string) *registry.ConnProbes {
	p := &registry.ConnProbes{
		PartialJudge: loginPartial,
		Plain:        []registry.PlainProbe{{Name: "starttls-argument-accepted", Rounds: 3, Run: loginArgument(hello)}},
		Sessions:     []registry.SessionProbe{loginStateReset},
	}
	if hello == "EHLO" {
		p.Login, p.LoginSkip = login, loginSkip
		p.Plain = append([]registry.PlainProbe{{Name: "plaintext-mail-accepted", Rounds: 4, Run: loginMail}}, p.Plain...)
	}
	return p
}

// loginPartial judges a reply line read after the partial-line probe's
// EHLO: 250 answers the EHLO as sent; any other reply answers the
// fragment joined to it ("RSETEHLO starttls-check").
func loginPartial(line string) int {
	code, _, _, err := ParseLine(line)
	switch {
	case err != nil:
		return registry.Undecided
	case code == 250:
		return registry.Ours
	}
	return registry.Pipelined
}

// login greets the server, says EHLO and sends AUTH PLAIN for user before
// TLS; a 334 challenge is cancelled at once.
func login(c registry.ProbeConn, user, password string) registry.Login {
	out := registry.Login{Sent: `AUTH PLAIN <base64 of "\0` + user + `\0<random>">`}
	if err := LoginHello(c, "EHLO", c.LocalName()); err != nil {
		out.Note = err.Error()
		return out
	}
	if err := c.Send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+password))); err != nil {
		out.Note = err.Error()
		return out
	}
	code, text, err := ReadReply(c.Line)
	if code == 334 {
		_ = c.Send("*") // RFC 4954 §4: cancel the exchange
		_, _, _ = ReadReply(c.Line)
	}
	_ = c.Send("QUIT")
	if err != nil {
		out.Note = "AUTH: " + err.Error()
		return out
	}
	out.Reply = text
	out.Result = LoginJudge(code)
	return out
}

// loginSkip spares an MX that offers no AUTH before TLS the login: a
// check of a domain's MX hosts must not look like a password-guessing
// client to someone else's mail server.
func loginSkip(caps []string, submission bool) string {
	if submission || loginAdvertisesAuth(caps) {
		return ""
	}
	return "port 25, no AUTH advertised before TLS"
}

// loginAdvertisesAuth reports whether EHLO keywords list AUTH (RFC 4954).
func loginAdvertisesAuth(caps []string) bool {
	for _, c := range caps {
		if kw, _, _ := strings.Cut(c, " "); strings.EqualFold(kw, "AUTH") {
			return true
		}
	}
	return false
}

// LoginJudge classifies the answer to AUTH PLAIN before TLS, as a
// registry.Login result.
func LoginJudge(code int) int {
	switch code {
	case 235, 334, 535:
		// Accepted, asked for more, or checked and refused: the
		// credentials were taken in the clear.
		return registry.LoginProcessed
	case 530, 538, 534, 503, 502, 500, 504:
		// TLS required (530, 538), mechanism too weak here (534), AUTH
		// not enabled or unknown (503, 502, 500, 504).
		return registry.LoginRefused
	}
	return registry.LoginUndecided
}

// LoginHello reads the greeting (220) and says hello (EHLO or LHLO) as
// name (250), on a bare plaintext session; the probes that speak SMTP
// before TLS start with it.
func LoginHello(c registry.LineConn, hello, name string) error {
	if err := loginExpect(c, "", 220); err != nil {
		return err
	}
	return loginExpect(c, hello+" "+name, 250)
}

// loginExpect sends cmd (unless empty) and requires a reply with code want.
func loginExpect(c registry.LineConn, cmd string, want int) error {
	if cmd != "" {
		if err := c.Send(cmd); err != nil {
			return err
		}
	}
	code, text, err := ReadReply(c.Line)
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

// loginProbeUser is the sender the MAIL probe names: the .invalid
// top-level domain (RFC 2606) cannot hold a real mailbox.
const loginProbeUser = "starttls-check@invalid"

// loginMail sends MAIL FROM before TLS: a submission server must answer
// 530 (RFC 8314 §3.3, RFC 3207 §4); port 25 may accept it, as relaying in
// plaintext is how opportunistic TLS works (check lowers that finding).
func loginMail(c registry.ProbeConn) (verdict, evidence string) {
	if err := LoginHello(c, "EHLO", c.LocalName()); err != nil {
		return "error: " + err.Error(), ""
	}
	const mail = "MAIL FROM:<" + loginProbeUser + ">"
	if err := c.Send(mail); err != nil {
		return "error: " + err.Error(), ""
	}
	code, text, err := ReadReply(c.Line)
	// No RCPT, no DATA: nothing is ever delivered.
	_ = c.Send("RSET")
	_ = c.Send("QUIT")
	switch {
	case err != nil:
		return "error: " + err.Error(), ""
	case code == 250:
		return "fail", fmt.Sprintf("before TLS, %q was answered %q", mail, text)
	case code == 530 || strings.Contains(text, " 5.7."):
		return "pass", ""
	}
	// Refused for another reason (a sender check, a rate limit): that
	// says nothing about TLS.
	return fmt.Sprintf("inconclusive: %q was answered %q", mail, text), ""
}

// loginArgument sends STARTTLS with a parameter after hello, which
// RFC 3207 §4 answers with 501; a server that starts TLS anyway parses
// loosely.
func loginArgument(hello string) func(c registry.ProbeConn) (verdict, evidence string) {
	return func(c registry.ProbeConn) (verdict, evidence string) {
		if err := LoginHello(c, hello, c.LocalName()); err != nil {
			return "error: " + err.Error(), ""
		}
		const cmd = "STARTTLS starttls-check"
		if err := c.Send(cmd); err != nil {
			return "error: " + err.Error(), ""
		}
		code, text, err := ReadReply(c.Line)
		switch {
		case err != nil:
			return "error: " + err.Error(), ""
		case code == 220:
			// The server now waits for a ClientHello; closing ends it.
			return "fail", fmt.Sprintf("%q was answered %q", cmd, text)
		case code == 501:
			_ = c.Send("QUIT")
			return "pass", ""
		}
		_ = c.Send("QUIT")
		return fmt.Sprintf("pass (answered %q, not 501)", text), ""
	}
}

// loginStateReset sends MAIL inside TLS without a new EHLO: a server
// that accepts it kept the state of the EHLO before TLS (RFC 3207 §4.2).
var loginStateReset = registry.SessionProbe{Name: "state-not-reset", Verdicts: []string{"state-not-reset"}, Run: loginNoNewHello}

// loginTLSMail is the MAIL command the state-reset probe sends inside TLS.
const loginTLSMail = "MAIL FROM:<starttls-check@example.invalid>"

func loginNoNewHello(s registry.ProbeSession, report func(name, verdict, evidence string)) {
	const name = "state-not-reset"
	if _, err := s.Write([]byte(loginTLSMail + "\r\n")); err != nil {
		report(name, "error: "+err.Error(), "")
		return
	}
	line, err := s.ReadLine()
	if err != nil {
		report(name, "error: "+err.Error(), "")
		return
	}
	code, _, _, perr := ParseLine(line)
	_, _ = s.Write([]byte("RSET\r\nQUIT\r\n"))
	switch {
	case perr != nil:
		report(name, "error: "+perr.Error(), "")
		return
	case code != 250:
		report(name, "pass", "")
		return
	}
	// MAIL was accepted without a new EHLO. That proves the old EHLO was
	// kept only if the server otherwise insists on one: Postfix, for one,
	// never requires HELO (smtpd_helo_required = no).
	fresh, err := loginMailWithoutAnyHello(s)
	switch {
	case err != nil:
		report(name, "inconclusive: MAIL accepted inside TLS without a new EHLO, and a session without any EHLO could not be tried: "+err.Error(), "")
	case fresh == 250:
		report(name, "n/a (the server accepts MAIL without any EHLO)", "")
	default:
		report(name, "fail", fmt.Sprintf("inside TLS, with no new EHLO, %q was answered %q, while a session that never sent EHLO gets %d", loginTLSMail, line, fresh))
	}
}

// loginMailWithoutAnyHello opens a session that upgrades before any EHLO
// and returns the code the server gives MAIL inside TLS.
func loginMailWithoutAnyHello(s registry.ProbeSession) (int, error) {
	c, startTLS, err := s.Fresh()
	if err != nil {
		return 0, err
	}
	if code, _, err := ReadReply(c.Line); err != nil || code != 220 {
		return 0, fmt.Errorf("greeting %d: %v", code, err)
	}
	if err := c.Send("STARTTLS"); err != nil {
		return 0, err
	}
	if code, _, err := ReadReply(c.Line); err != nil || code != 220 {
		return 0, fmt.Errorf("STARTTLS before EHLO answered %d (%v)", code, err)
	}
	tc, err := startTLS()
	if err != nil {
		return 0, err
	}
	if _, err := tc.Write([]byte(loginTLSMail + "\r\n")); err != nil {
		return 0, err
	}
	code, _, err := ReadReply(tc.ReadLine)
	_, _ = tc.Write([]byte("QUIT\r\n"))
	return code, err
}
