// The nginx commands of loadgen drive bench/proxy-vs-nginx.sh:
//
//	loadgen sink -listen 127.0.0.1:0
//	    a plaintext SMTP sink: the backend of both proxies. EHLO, MAIL,
//	    RCPT, DATA (the final reply is "250 2.0.0 queued as bench-N"), QUIT.
//	loadgen auth -listen 127.0.0.1:0 -server 127.0.0.1 -port N
//	    an nginx auth_http service that sends every session to one backend.
//	loadgen mail -target ADDR -mode starttls|implicit -ca F -c 16 -d 10s -size 1024
//	    mail sessions per second: connect, (EHLO, STARTTLS,) TLS handshake,
//	    EHLO, MAIL, RCPT, DATA with a small message, QUIT. A session only
//	    counts when the DATA reply comes from the sink ("queued as bench").
//	loadgen caps -target ADDR -ca F
//	    prints the greeting and EHLO replies before and after STARTTLS, and
//	    what a mail transaction without STARTTLS gets.

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// ---- sink

var queued atomic.Int64

func runSink(listen string) error { return listenAndServe(listen, serveSink) }

func serveSink(c net.Conn) {
	defer c.Close()
	br := bufio.NewReaderSize(c, 16<<10)
	bw := bufio.NewWriterSize(c, 4<<10)
	bw.WriteString("220 sink.bench.test ESMTP\r\n")
	bw.Flush()
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			bw.WriteString("250-sink.bench.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
		case "HELO":
			bw.WriteString("250 sink.bench.test\r\n")
		case "MAIL", "RCPT", "RSET", "NOOP":
			bw.WriteString("250 2.0.0 ok\r\n")
		case "DATA":
			bw.WriteString("354 end with <CRLF>.<CRLF>\r\n")
			if err := bw.Flush(); err != nil {
				return
			}
			for {
				l, err := br.ReadSlice('\n')
				if err != nil && err != bufio.ErrBufferFull {
					return
				}
				if string(l) == ".\r\n" {
					break
				}
			}
			fmt.Fprintf(bw, "250 2.0.0 queued as bench-%d\r\n", queued.Add(1))
		case "QUIT":
			bw.WriteString("221 2.0.0 bye\r\n")
			bw.Flush()
			return
		default:
			bw.WriteString("502 5.5.2 not implemented\r\n")
		}
		if err := bw.Flush(); err != nil {
			return
		}
	}
}

// ---- auth_http

func runAuth(listen, server string, port int) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening=%s\n", ln.Addr())
	p := strconv.Itoa(port)
	return http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Auth-Status", "OK")
		h.Set("Auth-Server", server)
		h.Set("Auth-Port", p)
		w.WriteHeader(http.StatusOK)
	}))
}

// ---- clients

type conn struct {
	net.Conn
	br *bufio.Reader
}

// reply reads one (multi-line) reply and returns its lines.
func (c *conn) reply() ([]string, error) {
	var lines []string
	for i := 0; i < 100; i++ {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		lines = append(lines, l)
		if len(l) < 4 || l[3] != '-' {
			return lines, nil
		}
	}
	return lines, errors.New("reply too long")
}

// cmd sends line (if not empty) and checks the reply code.
func (c *conn) cmd(line, code string) ([]string, error) {
	if line != "" {
		if _, err := c.Write([]byte(line + "\r\n")); err != nil {
			return nil, err
		}
	}
	r, err := c.reply()
	if err != nil {
		return r, fmt.Errorf("%q: %w", line, err)
	}
	if !strings.HasPrefix(r[len(r)-1], code) {
		return r, fmt.Errorf("%q: want %s, got %q", line, code, strings.Join(r, " | "))
	}
	return r, nil
}

func dial(ctx context.Context, target string) (*conn, error) {
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: raw, br: bufio.NewReaderSize(raw, 8<<10)}, nil
}

func (c *conn) upgrade(ctx context.Context, tc *tls.Config) error {
	t := tls.Client(c.Conn, tc)
	if err := t.HandshakeContext(ctx); err != nil {
		return err
	}
	c.Conn = t
	c.br = bufio.NewReaderSize(t, 8<<10)
	return nil
}

func message(size int) []byte {
	var b strings.Builder
	b.WriteString("From: <a@bench.test>\r\nTo: <b@bench.test>\r\nSubject: bench\r\n\r\n")
	line := strings.Repeat("abcdefghij", 7) + "\r\n" // 72 bytes
	for b.Len()+len(line) <= size {
		b.WriteString(line)
	}
	b.WriteString(".\r\n")
	return []byte(b.String())
}

func session(ctx context.Context, target, mode string, tc *tls.Config, msg []byte) error {
	c, err := dial(ctx, target)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	switch mode {
	case "starttls":
		if _, err := c.cmd("", "220"); err != nil {
			return err
		}
		if _, err := c.cmd("EHLO client.bench.test", "250"); err != nil {
			return err
		}
		if _, err := c.cmd("STARTTLS", "220"); err != nil {
			return err
		}
		if err := c.upgrade(ctx, tc); err != nil {
			return err
		}
	case "implicit":
		if err := c.upgrade(ctx, tc); err != nil {
			return err
		}
		if _, err := c.cmd("", "220"); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown mode %q", mode)
	}
	if _, err := c.cmd("EHLO client.bench.test", "250"); err != nil {
		return err
	}
	if _, err := c.cmd("MAIL FROM:<a@bench.test>", "250"); err != nil {
		return err
	}
	if _, err := c.cmd("RCPT TO:<b@bench.test>", "250"); err != nil {
		return err
	}
	if _, err := c.cmd("DATA", "354"); err != nil {
		return err
	}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	r, err := c.cmd("", "250")
	if err != nil {
		return err
	}
	if !strings.Contains(r[len(r)-1], "queued as bench-") {
		return fmt.Errorf("DATA reply not from the sink: %q", r[len(r)-1])
	}
	_, err = c.cmd("QUIT", "221")
	return err
}

func runMail(target, mode string, tc *tls.Config, conc int, d time.Duration, size int) error {
	msg := message(size)
	ok, failed, el, fe := closedLoop(conc, d, func(ctx context.Context) error {
		return session(ctx, target, mode, tc, msg)
	})
	fmt.Printf("test=mail mode=%s clients=%d size=%d sessions=%d failed=%d seconds=%.2f per_second=%.1f first_error=%q\n",
		mode, conc, len(msg)-3, ok, failed, el, float64(ok)/el, fe)
	if ok == 0 {
		return fmt.Errorf("no session completed: %s", fe)
	}
	return nil
}

// runCaps prints what a STARTTLS client sees, one "caps." line per item.
func runCaps(target string, tc *tls.Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	show := func(k string, r []string, err error) {
		s := strings.Join(r, " | ")
		if err != nil && s == "" {
			s = "error: " + err.Error()
		}
		fmt.Printf("caps.%s=%s\n", k, s)
	}
	// MAIL before STARTTLS, on its own connection.
	if c, err := dial(ctx, target); err == nil {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		r, err := c.cmd("", "220")
		show("greeting", r, err)
		r, err = c.cmd("EHLO client.bench.test", "250")
		show("ehlo_plain", r, err)
		r, err = c.cmd("MAIL FROM:<a@bench.test>", "")
		show("mail_plain", r, err)
		r, err = c.cmd("RCPT TO:<b@bench.test>", "")
		show("rcpt_plain", r, err)
		r, err = c.cmd("DATA", "")
		show("data_plain", r, err)
		if err == nil && strings.HasPrefix(r[len(r)-1], "354") {
			_, _ = c.Write(message(200))
			r, err = c.cmd("", "")
			show("message_plain", r, err)
		}
		c.Close()
	}
	c, err := dial(ctx, target)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.cmd("", "220"); err != nil {
		return err
	}
	if _, err := c.cmd("EHLO client.bench.test", "250"); err != nil {
		return err
	}
	r, err := c.cmd("STARTTLS", "220")
	show("starttls", r, err)
	if err != nil {
		return err
	}
	if err := c.upgrade(ctx, tc); err != nil {
		return err
	}
	if t, ok := c.Conn.(*tls.Conn); ok {
		st := t.ConnectionState()
		fmt.Printf("caps.tls=%s %s %s\n", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite), st.CurveID)
	}
	r, err = c.cmd("EHLO client.bench.test", "250")
	show("ehlo_tls", r, err)
	r, err = c.cmd("STARTTLS", "")
	show("starttls_again", r, err)
	r, err = c.cmd("MAIL FROM:<a@bench.test>", "")
	show("mail_tls", r, err)
	r, err = c.cmd("RCPT TO:<b@bench.test>", "")
	show("rcpt_tls", r, err)
	r, err = c.cmd("QUIT", "")
	show("quit", r, err)
	return nil
}
