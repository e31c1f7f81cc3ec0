package pop3

import (
	"context"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// serveApp is POP3 (RFC 1939, CAPA RFC 2449, SASL RFC 5034) with an
// empty maildrop, inside TLS.
func serveApp(ctx context.Context, s registry.Session) {
	if s.Implicit() && s.Write("+OK "+s.Hostname()+" POP3 ready") != nil {
		return
	}
	var user string
	authed := false
	registry.Dialogue(ctx, s, func(line string) ([]string, bool) {
		verb, arg, _ := strings.Cut(line, " ")
		switch v := strings.ToUpper(verb); {
		case v == "CAPA":
			reply := []string{"+OK Capability list follows", "UIDL", "TOP", "RESP-CODES", "PIPELINING"}
			if s.Secure() && !authed {
				reply = append(reply, "USER", "SASL PLAIN")
			}
			return append(reply, "."), false
		case v == "QUIT":
			return []string{"+OK Bye"}, true
		case v == "STLS":
			return []string{"-ERR TLS already active"}, false
		case v == "NOOP" && authed:
			return []string{"+OK"}, false
		case (v == "USER" || v == "PASS" || v == "AUTH") && !s.Secure():
			return []string{"-ERR [AUTH] Use STLS first"}, false
		case v == "USER" && !authed:
			user = arg
			return []string{"+OK"}, false
		case v == "PASS" && !authed:
			if user != "" && s.CheckUser(user, arg) {
				authed = true
				return []string{"+OK Maildrop ready"}, false
			}
			return []string{"-ERR [AUTH] Invalid credentials"}, false
		case v == "AUTH" && !authed:
			mech, ir, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				return []string{"-ERR Unsupported mechanism"}, false
			}
			accepted, broken := registry.ServePlain(s, ir)
			if broken {
				return nil, true
			}
			if accepted {
				authed = true
				return []string{"+OK Maildrop ready"}, false
			}
			return []string{"-ERR [AUTH] Invalid credentials"}, false
		case !authed:
			return []string{"-ERR Not authenticated"}, false
		case v == "STAT":
			return []string{"+OK 0 0"}, false
		case v == "LIST" || v == "UIDL":
			if arg != "" {
				return []string{"-ERR No such message"}, false
			}
			return []string{"+OK 0 messages", "."}, false
		case v == "RETR" || v == "TOP" || v == "DELE":
			return []string{"-ERR No such message"}, false
		case v == "RSET":
			return []string{"+OK"}, false
		}
		return []string{"-ERR Unknown command"}, false
	})
}
