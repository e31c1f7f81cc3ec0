package serve

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// nntpApp is a reader-mode NNTP server (RFC 3977) with no newsgroups.
func nntpApp(ctx context.Context, s *session) {
	if s.c.Implicit && s.write("200 "+s.o.Hostname+" NNTP ready (posting not allowed here)") != nil {
		return
	}
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.readLine()
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(line, " ")
		var reply []string
		switch strings.ToUpper(verb) {
		case "CAPABILITIES":
			reply = []string{"101 Capability list:", "VERSION 2", "READER", "LIST ACTIVE NEWSGROUPS", "."}
		case "MODE":
			reply = []string{"201 Reader mode, posting not allowed"}
		case "DATE":
			reply = []string{"111 " + time.Now().UTC().Format("20060102150405")}
		case "LIST":
			reply = []string{"215 Newsgroups follow", "."}
		case "GROUP":
			reply = []string{"411 No such newsgroup"}
		case "STARTTLS":
			reply = []string{"502 TLS already active"}
		case "QUIT":
			_ = s.write("205 Bye")
			return
		default:
			reply = []string{"500 Unknown command"}
		}
		if s.write(reply...) != nil {
			return
		}
	}
}

// sieveApp is ManageSieve (RFC 5804) with SASL PLAIN and no scripts. The
// library already re-sent the capabilities after TLS.
func sieveApp(ctx context.Context, s *session) {
	authed := false
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.readLine()
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
			if tag, err := sieveString(arg); err == nil && tag != "" {
				reply = []string{"OK (TAG " + strconv.Quote(tag) + `) "Done"`}
			} else {
				reply = []string{`OK "NOOP completed"`}
			}
		case v == "LOGOUT":
			_ = s.write(`OK "Logout completed"`)
			return
		case v == "STARTTLS":
			reply = []string{`NO "TLS already active"`}
		case v == "AUTHENTICATE":
			mech, ir, _ := strings.Cut(arg, " ")
			if n, ok := sieveLiteral(ir); ok {
				// {n+}: the initial response follows as n raw bytes (RFC 5804 §4).
				if ir, err = s.readN(n); err != nil {
					return
				}
			}
			if !strings.EqualFold(strings.Trim(mech, `"`), "PLAIN") || ir == "" {
				reply = []string{`NO "Only PLAIN with an initial response"`}
				break
			}
			if u, p, ok := plainCreds(strings.Trim(strings.TrimSpace(ir), `"`)); ok && s.checkUser(u, p) {
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
		if s.write(reply...) != nil {
			return
		}
	}
}

// ircApp registers the client and answers PING; enough for a client to
// see it is talking IRC inside TLS.
func ircApp(ctx context.Context, s *session) {
	h := ":" + s.o.Hostname
	nick := "*"
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.readLine()
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var reply []string
		switch strings.ToUpper(f[0]) {
		case "CAP":
			if len(f) > 1 && strings.EqualFold(f[1], "LS") {
				reply = []string{h + " CAP " + nick + " LS :multi-prefix"}
			}
		case "NICK":
			if len(f) > 1 {
				nick = strings.TrimPrefix(f[1], ":")
			}
		case "USER":
			reply = []string{h + " 001 " + nick + " :Welcome over TLS, " + nick, h + " 376 " + nick + " :End of MOTD"}
		case "PING":
			reply = []string{h + " PONG " + s.o.Hostname + " :" + strings.TrimPrefix(strings.Join(f[1:], " "), ":")}
		case "QUIT":
			_ = s.write("ERROR :Closing link")
			return
		default:
			reply = []string{h + " 421 " + nick + " " + f[0] + " :Unknown command"}
		}
		if len(reply) > 0 && s.write(reply...) != nil {
			return
		}
	}
}

// httpApp serves one connection with net/http: a page saying the
// request came over TLS.
func httpApp(ctx context.Context, s *session) {
	l := &oneConnListener{c: &bufferedConn{Conn: s.c, r: s.br}, done: make(chan struct{})}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "Hello from starttls serve: %s %s over TLS=%v\n", r.Method, r.URL.Path, s.secure())
		}),
		ReadHeaderTimeout: s.o.IdleTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				l.finish()
			}
		},
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-l.done:
		}
		srv.Close()
	}()
	_ = srv.Serve(l)
	<-l.done
}

// bufferedConn reads through the session's buffer, so nothing already
// read by the upgrade is lost.
type bufferedConn struct {
	net.Conn
	r interface{ Read([]byte) (int, error) }
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// oneConnListener hands out one connection, then blocks until it closes.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
	fin  sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) finish()        { l.fin.Do(func() { close(l.done) }) }
func (l *oneConnListener) Close() error   { l.finish(); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }

// maxSieveLiteral bounds a client literal: an AUTHENTICATE initial
// response, never a script (PUTSCRIPT is not implemented).
const maxSieveLiteral = 4096

// sieveLiteral reports whether arg is a non-synchronising literal
// announcement {n+} (or a synchronising {n}) and its length.
func sieveLiteral(arg string) (int, bool) {
	arg = strings.TrimSpace(arg)
	if !strings.HasPrefix(arg, "{") || !strings.HasSuffix(arg, "}") {
		return 0, false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(arg[1:len(arg)-1], "+"))
	if err != nil || n < 0 || n > maxSieveLiteral {
		return 0, false
	}
	return n, true
}

// sieveString unquotes a quoted string argument; an atom comes back as is.
func sieveString(arg string) (string, error) {
	arg = strings.TrimSpace(arg)
	if strings.HasPrefix(arg, `"`) {
		return strconv.Unquote(arg)
	}
	return arg, nil
}

// readN reads n bytes of a literal and the rest of its command line.
func (s *session) readN(n int) (string, error) {
	_ = s.c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
	b := make([]byte, n)
	if _, err := io.ReadFull(s.br, b); err != nil {
		return "", err
	}
	if _, err := s.readLine(); err != nil {
		return "", err
	}
	return string(b), nil
}
