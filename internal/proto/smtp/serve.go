package smtp

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// serveMaxMessage bounds one message's size.
const serveMaxMessage = 10 << 20

// serveApp is SMTP (RFC 5321), submission and LMTP (RFC 2033) inside TLS.
// The library handed over a fresh session, so the pre-TLS EHLO is
// forgotten and MAIL needs a new one (RFC 3207 §4.2).
func serveApp(ctx context.Context, s registry.ServeConn) {
	up := s.Upgrade()
	lmtp := up.Protocol == "lmtp"
	hello := "EHLO"
	if lmtp {
		hello = "LHLO"
	}
	if s.Implicit() {
		if s.Write("220 "+s.Hostname()+" ESMTP starttls-go") != nil {
			return
		}
	}
	// A plaintext hand-off (Optional policy) already had its EHLO answered
	// by the library.
	helloSeen, authed := !s.Secure() && up.ClientName != "", false
	var from string
	var rcpts []string
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.ReadLine()
		if err != nil {
			if err == registry.ErrServeLineTooLong {
				_ = s.Write("500 5.5.6 Line too long")
			}
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		var reply []string
		switch strings.ToUpper(verb) {
		case "EHLO", "HELO", "LHLO":
			if v := strings.ToUpper(verb); lmtp != (v == "LHLO") {
				reply = []string{"500 5.5.1 Use " + hello}
				break
			}
			helloSeen, from, rcpts = true, "", nil
			if strings.ToUpper(verb) == "HELO" {
				reply = []string{"250 " + s.Hostname()}
				break
			}
			caps := []string{s.Hostname(), "PIPELINING", fmt.Sprintf("SIZE %d", serveMaxMessage), "8BITMIME", "ENHANCEDSTATUSCODES"}
			if s.Secure() {
				caps = append(caps, "AUTH PLAIN LOGIN")
			}
			reply = Multiline(250, caps)
		case "STARTTLS":
			reply = []string{"503 5.5.1 TLS already active"}
			if !s.Secure() {
				reply = []string{"454 4.7.0 TLS not available now"}
			}
		case "AUTH":
			switch {
			case !s.Secure():
				reply = []string{"538 5.7.11 Encryption required for requested authentication mechanism"}
			case authed:
				reply = []string{"503 5.5.1 Already authenticated"}
			case !helloSeen:
				reply = []string{"503 5.5.1 " + hello + " first"}
			default:
				ok, r := serveAuth(s, arg)
				authed, reply = ok, []string{r}
			}
		case "MAIL":
			switch {
			case !helloSeen:
				reply = []string{"503 5.5.1 " + hello + " first"}
			case from != "":
				reply = []string{"503 5.5.1 Nested MAIL command"}
			case !strings.HasPrefix(strings.ToUpper(arg), "FROM:"):
				reply = []string{"501 5.5.4 Syntax: MAIL FROM:<address>"}
			default:
				from = strings.TrimSpace(arg[5:])
				reply = []string{"250 2.1.0 Ok"}
			}
		case "RCPT":
			switch {
			case from == "":
				reply = []string{"503 5.5.1 Need MAIL command"}
			case !strings.HasPrefix(strings.ToUpper(arg), "TO:"):
				reply = []string{"501 5.5.4 Syntax: RCPT TO:<address>"}
			case len(rcpts) >= 100:
				reply = []string{"452 4.5.3 Too many recipients"}
			default:
				rcpts = append(rcpts, strings.TrimSpace(arg[3:]))
				reply = []string{"250 2.1.5 Ok"}
			}
		case "DATA":
			if len(rcpts) == 0 {
				reply = []string{"503 5.5.1 Need RCPT command"}
				break
			}
			if s.Write("354 End data with <CR><LF>.<CR><LF>") != nil {
				return
			}
			msg, err := serveReadData(s)
			if err != nil {
				if err == errServeTooBig {
					_ = s.Write("552 5.3.4 Message too big")
				}
				return
			}
			id, err := serveStore(s, from, rcpts, msg)
			r := "250 2.0.0 Ok: queued as " + id
			if err != nil {
				r = "451 4.3.0 Could not store the message"
			}
			reply = []string{r}
			if lmtp {
				reply = make([]string, len(rcpts))
				for i := range reply {
					reply[i] = r
				}
			}
			from, rcpts = "", nil
		case "RSET":
			from, rcpts = "", nil
			reply = []string{"250 2.0.0 Ok"}
		case "NOOP":
			reply = []string{"250 2.0.0 Ok"}
		case "VRFY":
			reply = []string{"252 2.0.0 Cannot VRFY user"}
		case "QUIT":
			_ = s.Write("221 2.0.0 Bye")
			return
		default:
			reply = []string{"502 5.5.2 Command not recognized"}
		}
		if s.Write(reply...) != nil {
			return
		}
	}
}

func serveAuth(s registry.Session, arg string) (bool, string) {
	mech, ir, _ := strings.Cut(arg, " ")
	var user, pass string
	switch strings.ToUpper(mech) {
	case "PLAIN":
		if ir == "" {
			if s.Write("334 ") != nil {
				return false, ""
			}
			var err error
			if ir, err = s.ReadLine(); err != nil {
				return false, "501 5.5.2 Cannot read the response"
			}
		}
		var ok bool
		if user, pass, ok = registry.PlainCredentials(ir); !ok {
			return false, "501 5.5.2 Cannot decode the response"
		}
	case "LOGIN":
		ask := func(prompt string) (string, bool) {
			if s.Write("334 "+base64.StdEncoding.EncodeToString([]byte(prompt))) != nil {
				return "", false
			}
			l, err := s.ReadLine()
			if err != nil {
				return "", false
			}
			b, err := base64.StdEncoding.DecodeString(l)
			return string(b), err == nil
		}
		var ok1, ok2 bool
		if ir != "" {
			b, err := base64.StdEncoding.DecodeString(ir)
			user, ok1 = string(b), err == nil
		} else {
			user, ok1 = ask("Username:")
		}
		pass, ok2 = ask("Password:")
		if !ok1 || !ok2 {
			return false, "501 5.5.2 Cannot decode the response"
		}
	default:
		return false, "504 5.5.4 Unrecognized authentication type"
	}
	if !s.CheckUser(user, pass) {
		return false, "535 5.7.8 Authentication credentials invalid"
	}
	return true, "235 2.7.0 Authentication successful"
}

var errServeTooBig = errors.New("message too big")

// serveReadData reads a DATA body up to the lone dot, undoing dot-stuffing.
func serveReadData(s registry.Session) ([]byte, error) {
	var msg []byte
	for i := 0; i < 1<<20; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return nil, err
		}
		if line == "." {
			return msg, nil
		}
		line = strings.TrimPrefix(line, ".")
		if len(msg)+len(line) > serveMaxMessage {
			return nil, errServeTooBig
		}
		msg = append(msg, line...)
		msg = append(msg, '\r', '\n')
	}
	return nil, errServeTooBig
}

// serveStore writes the message into serve's mail directory (if set) and
// returns its id.
func serveStore(s registry.ServeConn, from string, rcpts []string, msg []byte) (string, error) {
	head := fmt.Sprintf("X-Envelope-From: %s\r\nX-Envelope-To: %s\r\n", from, strings.Join(rcpts, ", "))
	return s.Store(".eml", head+string(msg))
}
