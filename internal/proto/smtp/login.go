package smtp

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// SMTP and submission try AUTH PLAIN before TLS; LMTP takes no login.
// All three judge the partial-line probe by the reply to our EHLO.
func init() {
	registry.RegisterConnProbes(&registry.ConnProbes{Login: login, LoginSkip: loginSkip, PartialJudge: loginPartial}, "smtp", "submission")
	registry.RegisterConnProbes(&registry.ConnProbes{PartialJudge: loginPartial}, "lmtp")
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
