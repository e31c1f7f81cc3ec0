package nntp

import (
	"fmt"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// login sends AUTHINFO USER before TLS (RFC 4643).
func login(c registry.LineConn, user, _ string) registry.Login {
	out := registry.Login{Sent: "AUTHINFO USER " + user}
	code, text, err := smtp.ReadReply(c.Line)
	if err != nil || (code != 200 && code != 201) {
		out.Note = fmt.Sprintf("greeting %q %v", text, err)
		return out
	}
	if err := c.Send(out.Sent); err != nil {
		out.Note = err.Error()
		return out
	}
	code, text, err = smtp.ReadReply(c.Line)
	_ = c.Send("QUIT")
	if err != nil {
		out.Note = "AUTHINFO: " + err.Error()
		return out
	}
	out.Reply = text
	switch code {
	case 281, 381: // RFC 4643 §2.3: accepted, or the password is wanted
		out.Result = registry.LoginProcessed
	case 483, 502, 500, 501, 503: // RFC 4642 §2.2.2: 483 asks for TLS first
		out.Result = registry.LoginRefused
	}
	return out
}
