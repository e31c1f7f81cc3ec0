package imap

import (
	"context"
	"io"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// serveApp is IMAP4rev1 (RFC 3501) with one empty INBOX, inside TLS.
func serveApp(ctx context.Context, s registry.ServeConn) {
	caps := "IMAP4rev1 AUTH=PLAIN ID ENABLE LITERAL+"
	if !s.Secure() {
		caps = "IMAP4rev1 STARTTLS"
	}
	if s.Implicit() && s.Write("* OK [CAPABILITY "+caps+"] "+s.Hostname()+" IMAP4rev1 ready") != nil {
		return
	}
	authed := false
	registry.Dialogue(ctx, s, func(line string) ([]string, bool) {
		args, err := serveArgs(s, line)
		if err != nil || len(args) < 2 {
			return []string{"* BAD Malformed command"}, false
		}
		tag, cmd := args[0], strings.ToUpper(args[1])
		if cmd == "UID" && len(args) > 2 {
			cmd, args = "UID "+strings.ToUpper(args[2]), append(args[:2:2], args[3:]...)
		}
		args = args[2:]
		ok := func(text string) []string { return []string{tag + " OK " + text} }
		switch {
		case cmd == "CAPABILITY":
			return append([]string{"* CAPABILITY " + caps}, ok("CAPABILITY completed")...), false
		case cmd == "NOOP" || cmd == "CHECK":
			return ok(cmd + " completed"), false
		case cmd == "LOGOUT":
			return []string{"* BYE Logging out", tag + " OK LOGOUT completed"}, true
		case cmd == "STARTTLS":
			return []string{tag + " BAD TLS already active"}, false
		case cmd == "ID":
			return append([]string{`* ID ("name" "starttls-go")`}, ok("ID completed")...), false
		case cmd == "ENABLE":
			return append([]string{"* ENABLED"}, ok("ENABLE completed")...), false
		case cmd == "LOGIN":
			switch {
			case !s.Secure():
				return []string{tag + " NO [PRIVACYREQUIRED] Use STARTTLS first"}, false
			case len(args) != 2:
				return []string{tag + " BAD LOGIN needs a user and a password"}, false
			case s.CheckUser(args[0], args[1]):
				authed = true
				return ok("[CAPABILITY " + caps + "] LOGIN completed"), false
			}
			return []string{tag + " NO [AUTHENTICATIONFAILED] Invalid credentials"}, false
		case cmd == "AUTHENTICATE":
			switch {
			case !s.Secure():
				return []string{tag + " NO [PRIVACYREQUIRED] Use STARTTLS first"}, false
			case len(args) == 0 || !strings.EqualFold(args[0], "PLAIN"):
				return []string{tag + " NO [CANNOT] Unsupported mechanism"}, false
			case len(args) > 1 && args[1] == "":
				// An empty initial response given is not one to ask for.
				return []string{tag + " NO [AUTHENTICATIONFAILED] Invalid credentials"}, false
			}
			ir := ""
			if len(args) > 1 {
				ir = args[1]
			}
			accepted, broken := registry.ServePlain(s, ir)
			if broken {
				return nil, true
			}
			if accepted {
				authed = true
				return ok("AUTHENTICATE completed"), false
			}
			return []string{tag + " NO [AUTHENTICATIONFAILED] Invalid credentials"}, false
		case !authed:
			return []string{tag + " NO Not authenticated"}, false
		case cmd == "SELECT" || cmd == "EXAMINE":
			if len(args) < 1 || !strings.EqualFold(args[0], "INBOX") {
				return []string{tag + " NO [NONEXISTENT] No such mailbox"}, false
			}
			mode := "[READ-WRITE]"
			if cmd == "EXAMINE" {
				mode = "[READ-ONLY]"
			}
			return append([]string{`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`, "* 0 EXISTS", "* 0 RECENT",
				"* OK [UIDVALIDITY 1] UIDs valid", "* OK [UIDNEXT 1] Predicted next UID"}, ok(mode+" "+cmd+" completed")...), false
		case cmd == "LIST" || cmd == "LSUB":
			reply := ok(cmd + " completed")
			if len(args) == 2 && (args[1] == "*" || args[1] == "%" || strings.EqualFold(args[1], "INBOX")) {
				reply = append([]string{"* " + cmd + ` (\HasNoChildren) "/" INBOX`}, reply...)
			}
			return reply, false
		case cmd == "STATUS":
			return append([]string{"* STATUS INBOX (MESSAGES 0 RECENT 0 UIDNEXT 1 UIDVALIDITY 1 UNSEEN 0)"}, ok("STATUS completed")...), false
		case cmd == "SEARCH" || cmd == "UID SEARCH":
			return append([]string{"* SEARCH"}, ok("SEARCH completed")...), false
		case cmd == "FETCH" || cmd == "UID FETCH" || cmd == "STORE" || cmd == "UID STORE" || cmd == "EXPUNGE" || cmd == "CLOSE":
			return ok(cmd + " completed"), false
		}
		return []string{tag + " BAD Unknown command"}, false
	})
}

// serveArgs splits a command line into atoms, quoted strings and
// literals (reading literal bytes from the connection, bounded by
// registry.ServeMaxLine).
func serveArgs(s registry.ServeConn, line string) ([]string, error) {
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
				return nil, registry.ErrServeLineTooLong
			}
			out, line = append(out, b.String()), line[j+1:]
		case line[0] == '{' && strings.HasSuffix(line, "}"):
			spec := strings.TrimSuffix(strings.TrimPrefix(line, "{"), "}")
			sync := !strings.HasSuffix(spec, "+")
			n, err := strconv.Atoi(strings.TrimSuffix(spec, "+"))
			if err != nil || n < 0 || n > registry.ServeMaxLine {
				return nil, registry.ErrServeLineTooLong
			}
			if sync && s.Write("+ Ready for literal data") != nil {
				return nil, registry.ErrServeLineTooLong
			}
			buf := make([]byte, n)
			if _, err := io.ReadFull(s.Conn(), buf); err != nil {
				return nil, err
			}
			rest, err := s.ReadLine()
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
