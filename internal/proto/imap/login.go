package imap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// IMAP judges the partial-line probe by the tags: our yy NOOP, or the
// pipelined zz fragment joined to it.
var loginProbes = &registry.ConnProbes{PartialJudge: loginPartial}

// loginPartial judges a line read after the partial-line probe's
// "yy NOOP": untagged data is skipped, yy answers it as sent, zz answers
// the fragment "zz NOOP" joined to it; anything else does not tell.
func loginPartial(line string) int {
	switch {
	case strings.HasPrefix(line, "*"):
		return registry.Ignore
	case strings.HasPrefix(line, "yy "):
		return registry.Ours
	case strings.HasPrefix(line, "zz "):
		return registry.Pipelined
	}
	return registry.Undecided
}

// login reads the greeting, asks for CAPABILITY (for LOGINDISABLED) and
// sends LOGIN before TLS.
func login(c registry.LineConn, user, password string) registry.Login {
	out := registry.Login{Sent: fmt.Sprintf("a LOGIN %q <random>", user)}
	g, err := readResponse(c)
	switch {
	case err != nil:
		out.Note = "greeting: " + err.Error()
		return out
	case g.Tag != "*" || g.Status != "OK":
		out.Note = "the greeting is not * OK"
		return out
	}
	caps, err := command(c, "c CAPABILITY")
	if err != nil {
		out.Note = "CAPABILITY: " + err.Error()
		return out
	}
	disabled := false
	for _, u := range caps.untagged {
		if u.Status != "CAPABILITY" {
			continue
		}
		for _, f := range strings.Fields(u.Text) {
			disabled = disabled || strings.EqualFold(f, "LOGINDISABLED")
		}
	}
	r, err := command(c, fmt.Sprintf("a LOGIN %q %s", user, password))
	_ = c.Send("z LOGOUT")
	if err != nil {
		out.Note = "LOGIN: " + err.Error()
		return out
	}
	out.Reply = r.line
	out.Result = JudgeLogin(r.tagged, disabled)
	return out
}

// JudgeLogin classifies the tagged answer to LOGIN (a registry.Login
// result); disabled says the server advertised LOGINDISABLED, which makes
// a bare NO the refusal RFC 2595 §3.2 asks for.
func JudgeLogin(r Response, disabled bool) int {
	switch r.Status {
	case "OK":
		return registry.LoginProcessed
	case "BAD":
		return registry.LoginRefused
	case "NO":
		switch responseCode(r.Text) {
		case "PRIVACYREQUIRED":
			return registry.LoginRefused
		case "AUTHENTICATIONFAILED", "AUTHORIZATIONFAILED", "EXPIRED", "CONTACTADMIN":
			// RFC 5530: the server checked the credentials.
			return registry.LoginProcessed
		}
		if disabled {
			return registry.LoginRefused
		}
	}
	return registry.LoginUndecided
}

// responseCode returns the response code at the start of text ("[CODE ...]").
func responseCode(text string) string {
	if !strings.HasPrefix(text, "[") {
		return ""
	}
	code, _, _ := strings.Cut(strings.TrimPrefix(text, "["), "]")
	code, _, _ = strings.Cut(code, " ")
	return strings.ToUpper(code)
}

func readResponse(c registry.LineConn) (Response, error) {
	line, err := c.Line()
	if err != nil {
		return Response{}, err
	}
	return ParseResponse(line)
}

type result struct {
	untagged []Response
	tagged   Response
	line     string
}

// command sends cmd and reads until its tagged answer.
func command(c registry.LineConn, cmd string) (result, error) {
	var res result
	tag, _, _ := strings.Cut(cmd, " ")
	if err := c.Send(cmd); err != nil {
		return res, err
	}
	for i := 0; i < 100; i++ {
		line, err := c.Line()
		if err != nil {
			return res, err
		}
		r, err := ParseResponse(line)
		if err != nil {
			return res, err
		}
		switch r.Tag {
		case "*":
			res.untagged = append(res.untagged, r)
		case "+":
			// A continuation would take the credentials line by line;
			// nothing is sent into it.
			res.tagged, res.line = Response{Tag: "+", Status: "+"}, line
			return res, errors.New("the server asked for a continuation")
		case tag:
			res.tagged, res.line = r, line
			return res, nil
		}
	}
	return res, errors.New("no tagged answer in 100 lines")
}

// loginInvited: a pre-TLS CAPABILITY without LOGINDISABLED invites LOGIN.
func loginInvited(has func(string) bool, caps []string) string {
	if has("LOGINDISABLED") {
		return ""
	}
	return "the pre-TLS CAPABILITY lacks LOGINDISABLED: " + strings.Join(caps, " ")
}
