package sieve

import (
	"encoding/base64"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// login tries AUTHENTICATE PLAIN before TLS, after reading the
// capability greeting for the SASL mechanisms it offers.
func login(c registry.LineConn, user, password string) registry.Login {
	out := registry.Login{Sent: `AUTHENTICATE "PLAIN" <base64 of "\0` + user + `\0<random>">`}
	var mechs []string
	for i := 0; ; i++ {
		line, err := c.Line()
		if err != nil || i == 100 {
			out.Note = fmt.Sprintf("capability greeting: %v", err)
			return out
		}
		if status := Status(line); status != "" {
			if status != "OK" {
				out.Note = fmt.Sprintf("greeting %q", line)
				return out
			}
			break
		}
		if k, v, ok := strings.Cut(line, " "); ok && strings.EqualFold(strings.Trim(k, `"`), "SASL") {
			mechs = strings.Fields(strings.ToUpper(strings.Trim(v, `"`)))
		}
	}
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	if err := c.Send(`AUTHENTICATE "PLAIN" "` + plain + `"`); err != nil {
		out.Note = err.Error()
		return out
	}
	for i := 0; i < 100; i++ {
		line, err := c.Line()
		if err != nil {
			out.Note = "AUTHENTICATE: " + err.Error()
			break
		}
		status := Status(line)
		if status == "" {
			continue // a literal's contents or a challenge
		}
		out.Reply = line
		out.Result = JudgeAuth(status, line, mechs)
		break
	}
	_ = c.Send("LOGOUT")
	return out
}

// JudgeAuth classifies the answer to AUTHENTICATE before TLS (a
// registry.Login result); status is Status(line), mechs the SASL
// mechanisms the greeting offered.
func JudgeAuth(status, line string, mechs []string) int {
	_, rest, _ := strings.Cut(line, " ")
	code := ""
	if strings.HasPrefix(rest, "(") {
		code, _, _ = strings.Cut(strings.TrimPrefix(rest, "("), ")")
		code, _, _ = strings.Cut(strings.ToUpper(code), " ")
	}
	switch {
	case status == "OK":
		return registry.LoginProcessed
	case status == "BAD" || status == "BYE":
		return registry.LoginRefused
	case code == "ENCRYPT-NEEDED" || code == "AUTH-TOO-WEAK": // RFC 5804 §1.3
		return registry.LoginRefused
	case code != "":
		return registry.LoginProcessed
	}
	// A bare NO: a refusal when PLAIN was not offered, a failed login when it was.
	for _, m := range mechs {
		if m == "PLAIN" {
			return registry.LoginProcessed
		}
	}
	return registry.LoginRefused
}
