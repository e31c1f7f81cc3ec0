package sieve

import (
	"context"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// app is ManageSieve (RFC 5804) with SASL PLAIN and no scripts. The
// library already re-sent the capabilities after TLS.
func app(ctx context.Context, s registry.Session) {
	authed := false
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		var reply []string
		switch v := strings.ToUpper(verb); {
		case v == "CAPABILITY":
			reply = []string{`"IMPLEMENTATION" "starttls-go"`, `"SASL" "PLAIN"`, `"SIEVE" "fileinto vacation"`, `"VERSION" "1.0"`, `OK "Capability completed"`}
		case v == "NOOP":
			// RFC 5804 §2.11: a tag argument comes back as the TAG code;
			// clients resynchronise on it after STARTTLS.
			if tag, err := quotedString(arg); err == nil && tag != "" {
				reply = []string{"OK (TAG " + strconv.Quote(tag) + `) "Done"`}
			} else {
				reply = []string{`OK "NOOP completed"`}
			}
		case v == "LOGOUT":
			_ = s.Write(`OK "Logout completed"`)
			return
		case v == "STARTTLS":
			reply = []string{`NO "TLS already active"`}
		case v == "AUTHENTICATE":
			mech, ir, _ := strings.Cut(arg, " ")
			if n, ok := literal(ir); ok {
				// {n+}: the initial response follows as n raw bytes (RFC 5804 §4).
				if ir, err = s.ReadN(n); err != nil {
					return
				}
			}
			if !strings.EqualFold(strings.Trim(mech, `"`), "PLAIN") || ir == "" {
				reply = []string{`NO "Only PLAIN with an initial response"`}
				break
			}
			if u, p, ok := registry.PlainCredentials(strings.Trim(strings.TrimSpace(ir), `"`)); ok && s.CheckUser(u, p) {
				authed, reply = true, []string{`OK "Logged in"`}
			} else {
				reply = []string{`NO "Authentication failed"`}
			}
		case !authed:
			reply = []string{`NO "Log in first"`}
		case v == "LISTSCRIPTS":
			reply = []string{`OK "Listscripts completed"`}
		case v == "HAVESPACE":
			reply = []string{`OK`}
		default:
			reply = []string{`NO "Command not implemented"`}
		}
		if s.Write(reply...) != nil {
			return
		}
	}
}

// maxLiteral bounds a client literal: an AUTHENTICATE initial
// response, never a script (PUTSCRIPT is not implemented).
const maxLiteral = 4096

// literal reports whether arg is a non-synchronising literal
// announcement {n+} (or a synchronising {n}) and its length.
func literal(arg string) (int, bool) {
	arg = strings.TrimSpace(arg)
	if !strings.HasPrefix(arg, "{") || !strings.HasSuffix(arg, "}") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(arg[1:len(arg)-1], "+"))
	if err != nil || n < 0 || n > maxLiteral {
		return 0, false
	}
	return n, true
}

// quotedString unquotes a quoted string argument; an atom comes back as is.
func quotedString(arg string) (string, error) {
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, `"`) {
		return strconv.Unquote(arg)
	}
	return arg, nil
}
