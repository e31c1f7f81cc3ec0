package tlsrpt

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/wire"
)

// SMTPServer receives reports mailed to a rua=mailto: address (RFC 8460
// §5.3) with the library's SMTP server half: STARTTLS offered (or required),
// then a small SMTP application that takes only TLS-RPT report messages for
// its domains and answers every other message with a permanent error during
// the session, so that nothing is ever bounced later (no backscatter).
type SMTPServer struct {
	Collector *Collector
	TLSConfig *tls.Config
	// Hostname is the name in the greeting and EHLO reply.
	Hostname string
	// Domains are the recipient domains accepted (any local part);
	// Recipients are single accepted addresses. Both empty: anything.
	Domains, Recipients []string
	// RequireTLS refuses MAIL before STARTTLS (the library's Required
	// policy). Off by default: RFC 3207 §4 asks a publicly referenced
	// server not to require TLS, and a report is public data.
	RequireTLS bool
	// MaxMessage caps one message (SIZE, DATA). Default MaxMessageBytes.
	MaxMessage int
	// MaxLine caps one line. Default 4096; RFC 5321 §4.5.3.1.6 asks for 1000.
	MaxLine int
	// IdleTimeout bounds each wait for a command or data line (default 2
	// minutes); SessionTimeout bounds a whole session (default 10 minutes).
	IdleTimeout, SessionTimeout time.Duration
	// Limits are the per-client-IP connection rate and concurrency.
	Limits Limits
	Logger *slog.Logger
}

func (s *SMTPServer) log() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// Serve accepts on l until ctx ends.
func (s *SMTPServer) Serve(ctx context.Context, l net.Listener) error {
	if s.MaxMessage <= 0 {
		s.MaxMessage = MaxMessageBytes
	}
	if s.Hostname == "" {
		s.Hostname = "localhost"
	}
	if s.MaxLine <= 0 {
		s.MaxLine = 4096
	}
	if s.IdleTimeout <= 0 {
		s.IdleTimeout = 2 * time.Minute
	}
	if s.SessionTimeout <= 0 {
		s.SessionTimeout = 10 * time.Minute
	}
	policy := starttls.Optional
	if s.RequireTLS {
		policy = starttls.Required
	}
	srv := &starttls.Server{
		Protocol: starttls.SMTP,
		Config: starttls.ServerConfig{
			TLSConfig:    s.TLSConfig,
			Policy:       policy,
			Hostname:     s.Hostname,
			Capabilities: []string{"PIPELINING", "SIZE " + strconv.Itoa(s.MaxMessage), "8BITMIME", "ENHANCEDSTATUSCODES"},
			PhaseTimeout: 30 * time.Second,
			Logger:       s.Logger,
		},
		Handler: func(ctx context.Context, c *starttls.Conn) {
			defer c.Close()
			s.session(ctx, c)
		},
		OnError: func(remote net.Addr, err error) {
			s.log().Info("tlsrpt smtp: session ended before the application", "remote", remote.String(), "err", err)
		},
	}
	return srv.Serve(ctx, newLimitedListener(l, s.Limits, "421 4.7.0 Too many connections from your address, try again later\r\n"))
}

type smtpSession struct {
	*SMTPServer
	c     *starttls.Conn
	r     *wire.Reader
	hello bool
	from  string
	rcpts []string
}

func (s *SMTPServer) session(ctx context.Context, c *starttls.Conn) {
	ss := &smtpSession{SMTPServer: s, c: c, r: wire.NewReader(c, s.MaxLine, -1)}
	ctx, cancel := context.WithTimeout(ctx, s.SessionTimeout)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	// After a plaintext hand-off the library has answered EHLO already; after
	// TLS everything from before is forgotten (RFC 3207 §4.2).
	ss.hello = !c.Upgraded() && c.ClientName != ""
	bad := 0
	for i := 0; i < 500 && bad < 10; i++ {
		_ = c.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		line, err := ss.r.ReadLine()
		if err != nil {
			if errors.Is(err, wire.ErrLineTooLong) {
				ss.reply("500 5.5.6 Line too long")
			}
			return
		}
		code, quit := ss.command(ctx, line)
		if code >= 500 {
			bad++
		}
		if quit {
			return
		}
	}
	ss.reply("421 4.7.0 Too many commands or errors, closing")
}

func (ss *smtpSession) reply(lines ...string) bool {
	_ = ss.c.SetWriteDeadline(time.Now().Add(ss.IdleTimeout))
	_, err := ss.c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
	return err == nil
}

// command runs one command and returns the reply code and whether the
// session is over.
func (ss *smtpSession) command(ctx context.Context, line string) (int, bool) {
	verb, arg, _ := strings.Cut(line, " ")
	r := func(code int, text string) (int, bool) {
		return code, !ss.reply(strconv.Itoa(code) + " " + text)
	}
	switch strings.ToUpper(verb) {
	case "EHLO":
		if strings.TrimSpace(arg) == "" {
			return r(501, "5.5.4 Syntax: EHLO hostname")
		}
		ss.hello, ss.from, ss.rcpts = true, "", nil
		caps := []string{ss.Hostname, "PIPELINING", "SIZE " + strconv.Itoa(ss.MaxMessage), "8BITMIME", "ENHANCEDSTATUSCODES"}
		for i := range caps {
			sep := "-"
			if i == len(caps)-1 {
				sep = " "
			}
			caps[i] = "250" + sep + caps[i]
		}
		return 250, !ss.reply(caps...)
	case "HELO":
		ss.hello, ss.from, ss.rcpts = true, "", nil
		return r(250, ss.Hostname)
	case "MAIL":
		switch {
		case !ss.hello:
			return r(503, "5.5.1 EHLO first")
		case ss.from != "":
			return r(503, "5.5.1 Nested MAIL command")
		}
		from, params, ok := pathArg(arg, "FROM:")
		if !ok {
			return r(501, "5.5.4 Syntax: MAIL FROM:<address>")
		}
		for _, p := range params {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(k, "SIZE") {
				if n, err := strconv.ParseInt(v, 10, 64); err != nil || n > int64(ss.MaxMessage) {
					return r(552, "5.3.4 Message size exceeds fixed limit")
				}
			}
		}
		ss.from = "<" + from + ">"
		return r(250, "2.1.0 Ok")
	case "RCPT":
		if ss.from == "" {
			return r(503, "5.5.1 Need MAIL command")
		}
		to, _, ok := pathArg(arg, "TO:")
		if !ok {
			return r(501, "5.5.4 Syntax: RCPT TO:<address>")
		}
		if len(ss.rcpts) >= 10 {
			return r(452, "4.5.3 Too many recipients")
		}
		if !ss.accepts(to) {
			return r(550, "5.1.1 No such TLS-RPT mailbox here")
		}
		ss.rcpts = append(ss.rcpts, to)
		return r(250, "2.1.5 Ok")
	case "DATA":
		if len(ss.rcpts) == 0 {
			return r(503, "5.5.1 Need RCPT command")
		}
		if !ss.reply("354 End data with <CR><LF>.<CR><LF>") {
			return 0, true
		}
		msg, tooBig, err := ss.readData()
		if err != nil {
			return 0, true
		}
		ss.from, ss.rcpts = "", nil
		if tooBig {
			return r(552, "5.3.4 Message size exceeds fixed limit")
		}
		code, text := ss.deliver(ctx, msg)
		return r(code, text)
	case "BDAT":
		return r(502, "5.5.1 CHUNKING not offered")
	case "RSET":
		ss.from, ss.rcpts = "", nil
		return r(250, "2.0.0 Ok")
	case "NOOP":
		return r(250, "2.0.0 Ok")
	case "VRFY":
		return r(252, "2.0.0 Cannot VRFY user")
	case "STARTTLS":
		if ss.c.Upgraded() {
			return r(503, "5.5.1 TLS already active")
		}
		return r(503, "5.5.1 STARTTLS must come before mail commands")
	case "QUIT":
		ss.reply("221 2.0.0 Bye")
		return 221, true
	}
	return r(502, "5.5.2 Command not recognized")
}

// pathArg parses "FROM:<a@b> PARAM=V ..." (RFC 5321 §4.1.2), tolerating a
// space after the colon as many clients send.
func pathArg(arg, prefix string) (addr string, params []string, ok bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", nil, false
	}
	rest := strings.TrimLeft(arg[len(prefix):], " ")
	if !strings.HasPrefix(rest, "<") {
		return "", nil, false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 || end > 512 {
		return "", nil, false
	}
	return rest[1:end], strings.Fields(rest[end+1:]), true
}

func (ss *smtpSession) accepts(to string) bool {
	if len(ss.Domains) == 0 && len(ss.Recipients) == 0 {
		return true
	}
	for _, r := range ss.Recipients {
		if strings.EqualFold(r, to) {
			return true
		}
	}
	at := strings.LastIndexByte(to, '@')
	if at < 0 {
		return false
	}
	for _, d := range ss.Domains {
		if strings.EqualFold(strings.TrimSuffix(d, "."), to[at+1:]) {
			return true
		}
	}
	return false
}

// readData reads up to the lone dot, undoing dot-stuffing. Past the size
// cap it keeps reading (and dropping) so that it can answer 552 in the
// session instead of dropping the connection.
func (ss *smtpSession) readData() (msg []byte, tooBig bool, err error) {
	for {
		_ = ss.c.SetReadDeadline(time.Now().Add(ss.IdleTimeout))
		line, err := ss.r.ReadLine()
		if err != nil {
			return nil, false, err
		}
		if line == "." {
			return msg, tooBig, nil
		}
		if tooBig {
			continue
		}
		line = strings.TrimPrefix(line, ".")
		if len(msg)+len(line)+2 > ss.MaxMessage {
			tooBig, msg = true, nil
			continue
		}
		msg = append(msg, line...)
		msg = append(msg, '\r', '\n')
	}
}

// deliver ingests one message and chooses the reply: 250 when at least
// one report was stored (or already was), 550 5.7.1 for mail that is not a
// report, 554 5.6.0 for a malformed report (quarantined), 451 when the
// database failed (the sender retries).
func (ss *smtpSession) deliver(ctx context.Context, msg []byte) (int, string) {
	src := Source{Kind: "smtp", Remote: ss.c.RemoteAddr().String()}
	if ss.c.Upgraded() {
		st := ss.c.ConnectionState()
		src.Detail = tls.VersionName(st.Version)
	} else {
		src.Detail = "plaintext"
	}
	outs, err := ss.Collector.IngestMessage(ctx, msg, src)
	switch {
	case errors.Is(err, ErrNotReport):
		return 550, "5.7.1 This address accepts only TLS-RPT reports (RFC 8460: multipart/report; report-type=tlsrpt)"
	case err != nil:
		ss.log().Error("tlsrpt smtp: storing", "err", err)
		return 451, "4.3.0 Temporary storage failure, try again later"
	}
	ok, bad, reason := Verdict(outs)
	if ok == 0 {
		return 554, "5.6.0 Malformed TLS-RPT report: " + replySafe(reason)
	}
	stored, dup := 0, 0
	for _, o := range outs {
		if o.Stored {
			stored++
		} else if o.Duplicate {
			dup++
		}
	}
	text := fmt.Sprintf("2.0.0 Ok: %d report(s) stored, %d duplicate(s)", stored, dup)
	if bad > 0 {
		text += fmt.Sprintf(", %d malformed and quarantined", bad)
	}
	return 250, text
}

// replySafe makes text fit one reply line: printable ASCII, bounded.
func replySafe(s string) string {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s) && len(b) < 300; i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e {
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}
