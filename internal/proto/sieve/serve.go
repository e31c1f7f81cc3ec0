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
	registry.Dialogue(ctx, s, func(line string) ([]string, bool) {
		verb, arg, _ := strings.Cut(line, " ")
		switch v := strings.ToUpper(verb); {
		case v == "CAPABILITY":
			return []string{`"IMPLEMENTATION" "starttls-go"`, `"SASL" "PLAIN"`, `"SIEVE" "fileinto vacation"`, `"VERSION" "1.0"`, `OK "Capability completed"`}, false
		case v == "NOOP":
			// RFC 5804 §2.11: a tag argument comes back as the TAG code;
			// clients resynchronise on it after STARTTLS.
			if tag, err := quotedString(arg); err == nil && tag != "" {
				return []string{"OK (TAG " + strconv.Quote(tag) + `) "Done"`}, false
			}
			return []string{`OK "NOOP completed"`}, false
		case v == "LOGOUT":
			return []string{`OK "Logout completed"`}, true
		case v == "STARTTLS":
			return []string{`NO "TLS already active"`}, false
		case v == "AUTHENTICATE":
			mech, ir, _ := strings.Cut(arg, " ")
			if n, ok := literal(ir); ok {
				// {n+}: the initial response follows as n raw bytes (RFC 5804 §4).
				var err error
				if ir, err = s.ReadN(n); err != nil {
					return nil, true
				}
			}
			if !strings.EqualFold(strings.Trim(mech, `"`), "PLAIN") || ir == "" {
				return []string{`NO "Only PLAIN with an initial response"`}, false
			}
			if u, p, ok := registry.PlainCredentials(strings.Trim(strings.TrimSpace(ir), `"`)); ok && s.CheckUser(u, p) {
				authed = true
				return []string{`OK "Logged in"`}, false
			}
			return []string{`NO "Authentication failed"`}, false
		case !authed:
			return []string{`NO "Log in first"`}, false
		case v == "LISTSCRIPTS":
			return []string{`OK "Listscripts completed"`}, false
		case v == "HAVESPACE":
			return []string{`OK`}, false
		}
		return []string{`NO "Command not implemented"`}, false
	})
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
