package starttls_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// BenchmarkHandshake compares the cost of one full session — STARTTLS
// dialogue, TLS 1.3 handshake (no resumption), capabilities again inside
// TLS, QUIT — with a bare crypto/tls handshake and one exchange over the
// same loopback, same certificate and same groups. Client and server run
// in this process; cpu-ns/op is the process's user+system time per
// session (getrusage), the figure to compare: the goal is STARTTLS within
// 1.3× of the bare handshake.
//
//	go test -run '^$' -bench Handshake -benchtime 2000x .
func BenchmarkHandshake(b *testing.B) {
	serverTLS, clientTLS := exampleTLS()
	clientTLS.ServerName = "localhost"

	b.Run("tls", func(b *testing.B) {
		addr := serveBench(b, func(c net.Conn) {
			tc := tls.Server(c, serverTLS)
			br := bufio.NewReader(tc)
			if _, err := br.ReadString('\n'); err == nil {
				_, _ = io.WriteString(tc, "221 bye\r\n")
			}
		})
		measureCPU(b, func() error {
			raw, err := net.Dial("tcp", addr)
			if err != nil {
				return err
			}
			defer raw.Close()
			tc := tls.Client(raw, clientTLS)
			if err := tc.Handshake(); err != nil {
				return err
			}
			if _, err := io.WriteString(tc, "QUIT\r\n"); err != nil {
				return err
			}
			_, err = bufio.NewReader(tc).ReadString('\n')
			return err
		})
	})
	for _, p := range []starttls.Protocol{starttls.SMTP, starttls.IMAP, starttls.POP3} {
		b.Run("starttls-"+string(p), func(b *testing.B) {
			srv := &starttls.Server{Protocol: p, Config: starttls.ServerConfig{TLSConfig: serverTLS},
				Handler: func(ctx context.Context, c *starttls.Conn) {
					defer c.Close()
					for range 4 {
						line, err := c.ReadLine()
						if err != nil {
							return
						}
						if reply, end := benchReply(p, line); reply != "" {
							if _, err := io.WriteString(c, reply); err != nil || end {
								return
							}
						}
					}
				}}
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- srv.Serve(ctx, l) }()
			b.Cleanup(func() { cancel(); <-done })
			cfg := &starttls.Config{TLSConfig: clientTLS}
			measureCPU(b, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				c, err := starttls.Dial(ctx, p, l.Addr().String(), cfg)
				if err != nil {
					return err
				}
				defer c.Close()
				return c.Quit(ctx)
			})
		})
	}
}

// benchReply answers the capability query and QUIT inside TLS.
func benchReply(p starttls.Protocol, line string) (string, bool) {
	switch p {
	case starttls.SMTP:
		if strings.HasPrefix(line, "QUIT") {
			return "221 bye\r\n", true
		}
		return "250-localhost\r\n250 AUTH PLAIN\r\n", false
	case starttls.IMAP:
		tag, rest, _ := strings.Cut(line, " ")
		if rest == "LOGOUT" {
			return "* BYE\r\n" + tag + " OK LOGOUT done\r\n", true
		}
		return "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n", false
	default:
		if line == "QUIT" {
			return "+OK bye\r\n", true
		}
		return "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n", false
	}
}

// serveBench accepts connections on loopback and runs handle on each.
func serveBench(b *testing.B, handle func(net.Conn)) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); handle(c) }()
		}
	}()
	return l.Addr().String()
}

// measureCPU runs one session per iteration and reports the process's
// CPU time per session.
func measureCPU(b *testing.B, session func() error) {
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	b.ResetTimer()
	for b.Loop() {
		if err := session(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano()+after.Stime.Nano()-before.Utime.Nano()-before.Stime.Nano()) * time.Nanosecond
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}
