package pop3

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// login sends USER before TLS: a server that answers +OK waits for the
// password in the clear.
func login(c registry.LineConn, user, _ string) registry.Login {
	out := registry.Login{Sent: "USER " + user}
	if line, err := c.Line(); err != nil || !strings.HasPrefix(line, "+OK") {
		out.Note = fmt.Sprintf("greeting %q %v", line, err)
		return out
	}
	if err := c.Send(out.Sent); err != nil {
		out.Note = err.Error()
		return out
	}
	line, err := c.Line()
	_ = c.Send("QUIT")
	if err != nil {
		out.Note = "USER: " + err.Error()
		return out
	}
	out.Reply = line
	ok, _, err := ParseStatus(line)
	switch {
	case err != nil:
	case ok:
		out.Result = registry.LoginProcessed
	default:
		out.Result = registry.LoginRefused
	}
	return out
}

// loginInvited: USER in the pre-TLS CAPA invites a plaintext login.
func loginInvited(has func(string) bool, _ []string) string {
	if has("USER") {
		return "the pre-TLS CAPA lists USER"
	}
	return ""
}
