package serve

import (
	"context"
	"strconv"
	"strings"
)

// imapApp is IMAP4rev1 (RFC 3501) with one empty INBOX, inside TLS.
func imapApp(ctx context.Context, s *session) {
	caps := "IMAP4rev1 AUTH=PLAIN ID ENABLE LITERAL+"
	if !s.secure() {
		caps = "IMAP4rev1 STARTTLS"
	}
	if s.c.Implicit && s.write("* OK [CAPABILITY "+caps+"] "+s.o.Hostname+" IMAP4rev1 ready") != nil {
		return
	}
	authed := false
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.readLine()
		if err != nil {
			return
		}
		args, err := s.imapArgs(line)
		if err != nil || len(args) < 2 {
			if s.write("* BAD Malformed command") != nil {
				return
			}
			continue
		}
		tag, cmd := args[0], strings.ToUpper(args[1])
		if cmd == "UID" && len(args) > 2 {
			cmd, args = "UID "+strings.ToUpper(args[2]), append(args[:2:2], args[3:]...)
		}
		args = args[2:]
		ok := func(text string) []string { return []string{tag + " OK " + text} }
		var reply []string
		switch {
		case cmd == "CAPABILITY":
			reply = append([]string{"* CAPABILITY " + caps}, ok("CAPABILITY completed")...)
		case cmd == "NOOP" || cmd == "CHECK":
			reply = ok(cmd + " completed")
		case cmd == "LOGOUT":
			_ = s.write("* BYE Logging out", tag+" OK LOGOUT completed")
			return
		case cmd == "STARTTLS":
			reply = []string{tag + " BAD TLS already active"}
		case cmd == "ID":
			reply = append([]string{`* ID ("name" "starttls-go")`}, ok("ID completed")...)
		case cmd == "ENABLE":
			reply = append([]string{"* ENABLED"}, ok("ENABLE completed")...)
		case cmd == "LOGIN":
			switch {
			case !s.secure():
				reply = []string{tag + " NO [PRIVACYREQUIRED] Use STARTTLS first"}
			case len(args) != 2:
				reply = []string{tag + " BAD LOGIN needs a user and a password"}
			case s.checkUser(args[0], args[1]):
				authed, reply = true, ok("[CAPABILITY "+caps+"] LOGIN completed")
			default:
				reply = []string{tag + " NO [AUTHENTICATIONFAILED] Invalid credentials"}
			}
		case cmd == "AUTHENTICATE":
			switch {
			case !s.secure():
				reply = []string{tag + " NO [PRIVACYREQUIRED] Use STARTTLS first"}
			case len(args) == 0 || !strings.EqualFold(args[0], "PLAIN"):
				reply = []string{tag + " NO [CANNOT] Unsupported mechanism"}
			default:
				ir := ""
				if len(args) > 1 {
					ir = args[1]
				} else {
					if s.write("+ ") != nil {
						return
					}
					if ir, err = s.readLine(); err != nil {
						return
					}
				}
				if u, p, okc := plainCreds(ir); okc && s.checkUser(u, p) {
					authed, reply = true, ok("AUTHENTICATE completed")
				} else {
					reply = []string{tag + " NO [AUTHENTICATIONFAILED] Invalid credentials"}
				}
			}
		case !authed:
			reply = []string{tag + " NO Not authenticated"}
		case cmd == "SELECT" || cmd == "EXAMINE":
			if len(args) < 1 || !strings.EqualFold(args[0], "INBOX") {
				reply = []string{tag + " NO [NONEXISTENT] No such mailbox"}
				break
			}
			mode := "[READ-WRITE]"
			if cmd == "EXAMINE" {
				mode = "[READ-ONLY]"
			}
			reply = append([]string{`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`, "* 0 EXISTS", "* 0 RECENT",
				"* OK [UIDVALIDITY 1] UIDs valid", "* OK [UIDNEXT 1] Predicted next UID"}, ok(mode+" "+cmd+" completed")...)
		case cmd == "LIST" || cmd == "LSUB":
			reply = ok(cmd + " completed")
			if len(args) == 2 && (args[1] == "*" || args[1] == "%" || strings.EqualFold(args[1], "INBOX")) {
				reply = append([]string{"* " + cmd + ` (\HasNoChildren) "/" INBOX`}, reply...)
			}
		case cmd == "STATUS":
			reply = append([]string{"* STATUS INBOX (MESSAGES 0 RECENT 0 UIDNEXT 1 UIDVALIDITY 1 UNSEEN 0)"}, ok("STATUS completed")...)
		case cmd == "SEARCH" || cmd == "UID SEARCH":
			reply = append([]string{"* SEARCH"}, ok("SEARCH completed")...)
		case cmd == "FETCH" || cmd == "UID FETCH" || cmd == "STORE" || cmd == "UID STORE" || cmd == "EXPUNGE" || cmd == "CLOSE":
			reply = ok(cmd + " completed")
		default:
			reply = []string{tag + " BAD Unknown command"}
		}
		if s.write(reply...) != nil {
			return
		}
	}
}

// imapArgs splits a command line into atoms, quoted strings and literals
// (reading literal bytes from the connection, bounded by maxLine).
func (s *session) imapArgs(line string) ([]string, error) {
	var out []string
	for i := 0; i < 64; i++ {
		line = strings.TrimLeft(line, " ")
		if line == "" {
			return out, nil
		}
		switch {
		case line[0] == '"':
			var b strings.Builder
			j := 1
			for ; j < len(line) && line[j] != '"'; j++ {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
				b.WriteByte(line[j])
			}
			if j >= len(line) {
				return nil, errLineTooLong
			}
			out, line = append(out, b.String()), line[j+1:]
		case line[0] == '{' && strings.HasSuffix(line, "}"):
			spec := strings.TrimSuffix(strings.TrimPrefix(line, "{"), "}")
			sync := !strings.HasSuffix(spec, "+")
			n, err := strconv.Atoi(strings.TrimSuffix(spec, "+"))
			if err != nil || n < 0 || n > maxLine {
				return nil, errLineTooLong
			}
			if sync && s.write("+ Ready for literal data") != nil {
				return nil, errLineTooLong
			}
			buf := make([]byte, n)
			if _, err := ioReadFull(s, buf); err != nil {
				return nil, err
			}
			rest, err := s.readLine()
			if err != nil {
				return nil, err
			}
			out, line = append(out, string(buf)), rest
		default:
			end := strings.IndexByte(line, ' ')
			if end < 0 {
				end = len(line)
			}
			// An atom that ends with a literal announcement is handled next round.
			if k := strings.IndexByte(line[:end], '{'); k > 0 {
				end = k
			}
			out, line = append(out, line[:end]), line[end:]
		}
	}
	return out, nil
}

func ioReadFull(s *session, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := s.br.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}
