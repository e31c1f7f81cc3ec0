package serve

import (
	"context"
	"strings"
)

// pop3App is POP3 (RFC 1939, CAPA RFC 2449, SASL RFC 5034) with an empty
// maildrop, inside TLS.
func pop3App(ctx context.Context, s *session) {
	if s.c.Implicit && s.write("+OK "+s.o.Hostname+" POP3 ready") != nil {
		return
	}
	var user string
	authed := false
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.readLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		var reply []string
		switch v := strings.ToUpper(verb); {
		case v == "CAPA":
			reply = []string{"+OK Capability list follows", "UIDL", "TOP", "RESP-CODES", "PIPELINING"}
			if s.secure() && !authed {
				reply = append(reply, "USER", "SASL PLAIN")
			}
			reply = append(reply, ".")
		case v == "QUIT":
			_ = s.write("+OK Bye")
			return
		case v == "STLS":
			reply = []string{"-ERR TLS already active"}
		case v == "NOOP" && authed:
			reply = []string{"+OK"}
		case (v == "USER" || v == "PASS" || v == "AUTH") && !s.secure():
			reply = []string{"-ERR [AUTH] Use STLS first"}
		case v == "USER" && !authed:
			user, reply = arg, []string{"+OK"}
		case v == "PASS" && !authed:
			if user != "" && s.checkUser(user, arg) {
				authed, reply = true, []string{"+OK Maildrop ready"}
			} else {
				reply = []string{"-ERR [AUTH] Invalid credentials"}
			}
		case v == "AUTH" && !authed:
			mech, ir, _ := strings.Cut(arg, " ")
			if !strings.EqualFold(mech, "PLAIN") {
				reply = []string{"-ERR Unsupported mechanism"}
				break
			}
			if ir == "" {
				if s.write("+ ") != nil {
					return
				}
				if ir, err = s.readLine(); err != nil {
					return
				}
			}
			if u, p, ok := plainCreds(ir); ok && s.checkUser(u, p) {
				authed, reply = true, []string{"+OK Maildrop ready"}
			} else {
				reply = []string{"-ERR [AUTH] Invalid credentials"}
			}
		case !authed:
			reply = []string{"-ERR Not authenticated"}
		case v == "STAT":
			reply = []string{"+OK 0 0"}
		case v == "LIST" || v == "UIDL":
			if arg != "" {
				reply = []string{"-ERR No such message"}
			} else {
				reply = []string{"+OK 0 messages", "."}
			}
		case v == "RETR" || v == "TOP" || v == "DELE":
			reply = []string{"-ERR No such message"}
		case v == "RSET":
			reply = []string{"+OK"}
		default:
			reply = []string{"-ERR Unknown command"}
		}
		if s.write(reply...) != nil {
			return
		}
	}
}
