// Command loadgen drives bench/proxy-vs-stunnel.sh: a trivial SMTP-shaped
// backend, a plain Go TLS relay (the baseline), and the load: full
// handshakes per second, relay throughput, and idle connections.
//
//	loadgen backend -listen 127.0.0.1:0
//	loadgen relay   -listen 127.0.0.1:0 -backend ADDR -cert F -key F
//	loadgen hs      -target ADDR -mode starttls|implicit|plain -c 16 -d 10s -ca F
//	loadgen tput    -target ADDR -mode ... -c 1 -bytes 268435456 -dir up|down -ca F
//	loadgen idle    -target ADDR -mode ... -n 5000 -hold 10s -ca F
//
// Every result is one line of key=value pairs on stdout.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/benchload"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: loadgen backend|relay|hs|tput|idle|sink|auth|mail|caps [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	listen := fs.String("listen", "127.0.0.1:0", "listen address (backend, relay)")
	backend := fs.String("backend", "", "backend address (relay)")
	certFile := fs.String("cert", "", "certificate (relay)")
	keyFile := fs.String("key", "", "key (relay)")
	target := fs.String("target", "", "address to load")
	mode := fs.String("mode", "starttls", "client side: starttls (SMTP STARTTLS), implicit (TLS first), plain (no TLS)")
	caFile := fs.String("ca", "", "CA to verify the target")
	conc := fs.Int("c", 16, "concurrent clients")
	dur := fs.Duration("d", 10*time.Second, "duration (hs)")
	total := fs.Int64("bytes", 256<<20, "bytes per connection (tput)")
	dir := fs.String("dir", "up", "up (client to backend) or down (tput)")
	n := fs.Int("n", 5000, "connections (idle)")
	hold := fs.Duration("hold", 5*time.Second, "how long to hold idle connections")
	server := fs.String("server", "127.0.0.1", "Auth-Server (auth)")
	port := fs.Int("port", 0, "Auth-Port (auth)")
	size := fs.Int("size", 1024, "message size in bytes, headers included (mail)")
	groups := fs.String("groups", "x25519", "client key-exchange groups (mail, caps): x25519 (what OpenSSL 3.0 picks) or default (Go's, X25519MLKEM768 first)")
	_ = fs.Parse(os.Args[2:])

	var err error
	switch os.Args[1] {
	case "backend":
		err = runBackend(*listen)
	case "relay":
		err = runRelay(*listen, *backend, *certFile, *keyFile)
	case "hs", "tput", "idle":
		cl := &client{target: *target, mode: *mode}
		if cl.tls, err = clientTLS(*caFile); err != nil {
			break
		}
		switch os.Args[1] {
		case "hs":
			err = cl.handshakes(*conc, *dur)
		case "tput":
			err = cl.throughput(*conc, *total, *dir)
		case "idle":
			err = cl.idle(*n, *hold)
		}
	case "sink":
		err = runSink(*listen)
	case "auth":
		err = runAuth(*listen, *server, *port)
	case "mail", "caps":
		var tc *tls.Config
		if tc, err = clientTLS(*caFile); err != nil {
			break
		}
		switch *groups {
		case "x25519":
			tc.CurvePreferences = []tls.CurveID{tls.X25519}
		case "default":
		default:
			err = fmt.Errorf("-groups: want x25519 or default, got %q", *groups)
		}
		if err != nil {
			break
		}
		if os.Args[1] == "mail" {
			err = runMail(*target, *mode, tc, *conc, *dur, *size)
		} else {
			err = runCaps(*target, tc)
		}
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func clientTLS(caFile string) (*tls.Config, error) {
	tc := &tls.Config{ServerName: "localhost"}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no certificate", caFile)
		}
		tc.RootCAs = pool
	}
	return tc, nil
}

// ---- backend: greeting, EHLO, NOOP, QUIT; BULK n reads n bytes; BLOB n sends n bytes of lines.

func runBackend(listen string) error {
	return listenAndServe(listen, func(c net.Conn) { benchload.Serve(c, 10*time.Minute) })
}

// listenAndServe prints the address the scripts wait for and serves each
// connection in its own goroutine until the listener fails.
func listenAndServe(listen string, serve func(net.Conn)) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	return announceAndServe(ln, serve)
}

// announceAndServe is listenAndServe on a listener of the caller's.
func announceAndServe(ln net.Listener, serve func(net.Conn)) error {
	fmt.Printf("listening=%s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serve(c)
	}
}

// ---- relay: the plain Go TLS relay baseline (implicit TLS, io.Copy both ways).

func runRelay(listen, backend, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ln, err := tls.Listen("tcp", listen, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		return err
	}
	return announceAndServe(ln, func(c net.Conn) {
		defer c.Close()
		b, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer b.Close()
		done := make(chan struct{})
		go func() { _, _ = io.Copy(b, c); b.(*net.TCPConn).CloseWrite(); close(done) }()
		_, _ = io.Copy(c, b)
		_ = c.(*tls.Conn).CloseWrite()
		<-done
	})
}

// ---- clients

type client struct {
	target string
	mode   string
	tls    *tls.Config
}

// session opens a session ready for commands (greeting read, EHLO done
// inside TLS) and returns it with a line reader.
func (cl *client) session(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	switch cl.mode {
	case "starttls":
		c, err := starttls.Dial(ctx, starttls.SMTP, cl.target, &starttls.Config{TLSConfig: cl.tls})
		if err != nil {
			return nil, nil, err
		}
		return c, bufio.NewReaderSize(c, 64<<10), nil
	case "implicit", "plain":
		d := net.Dialer{Timeout: 10 * time.Second}
		raw, err := d.DialContext(ctx, "tcp", cl.target)
		if err != nil {
			return nil, nil, err
		}
		var c net.Conn = raw
		if cl.mode == "implicit" {
			tc := tls.Client(raw, cl.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, nil, err
			}
			c = tc
		}
		br := bufio.NewReaderSize(c, 64<<10)
		if err := expect(br, "220"); err != nil {
			c.Close()
			return nil, nil, err
		}
		if _, err := io.WriteString(c, "EHLO loadgen\r\n"); err != nil {
			c.Close()
			return nil, nil, err
		}
		if err := expect(br, "250"); err != nil {
			c.Close()
			return nil, nil, err
		}
		return c, br, nil
	}
	return nil, nil, fmt.Errorf("unknown mode %q", cl.mode)
}

// expect reads one reply and checks its code.
func expect(br *bufio.Reader, code string) error {
	for i := 0; i < 100; i++ {
		l, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if !strings.HasPrefix(l, code) {
			return fmt.Errorf("want %s, got %q", code, strings.TrimSpace(l))
		}
		if len(l) < 4 || l[3] != '-' {
			return nil
		}
	}
	return errors.New("reply too long")
}

// handshakes runs c clients that each open a session, say QUIT and close,
// for d; it reports sessions per second.
func (cl *client) handshakes(c int, d time.Duration) error {
	ok, failed, el, fe := closedLoop(c, d, func(ctx context.Context) error {
		conn, br, err := cl.session(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err = io.WriteString(conn, "QUIT\r\n"); err != nil {
			return err
		}
		return expect(br, "221")
	})
	fmt.Printf("test=hs mode=%s clients=%d sessions=%d failed=%d seconds=%.2f per_second=%.1f first_error=%q\n",
		cl.mode, c, ok, failed, el, float64(ok)/el, fe)
	if ok == 0 {
		return fmt.Errorf("no session completed: %s", fe)
	}
	return nil
}

// closedLoop runs c clients that each run one session after the other
// until d has passed, and counts the sessions that succeeded and failed.
func closedLoop(c int, d time.Duration, one func(context.Context) error) (ok, failed int64, seconds float64, firstErr string) {
	var nOK, nFailed atomic.Int64
	var first atomic.Value
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range c {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
				err := one(ctx)
				cancel()
				if err != nil {
					nFailed.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				nOK.Add(1)
			}
		})
	}
	wg.Wait()
	firstErr, _ = first.Load().(string)
	return nOK.Load(), nFailed.Load(), time.Since(start).Seconds(), firstErr
}

// throughput moves total bytes on each of c sessions in one direction and
// reports the aggregate MB/s (10^6 bytes).
func (cl *client) throughput(c int, total int64, dir string) error {
	var moved atomic.Int64
	errs := make(chan error, c)
	var ready, wg sync.WaitGroup
	startGate := make(chan struct{})
	type sess struct {
		conn net.Conn
		br   *bufio.Reader
	}
	sessions := make([]sess, c)
	for i := 0; i < c; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		conn, br, err := cl.session(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("session %d: %w", i, err)
		}
		sessions[i] = sess{conn, br}
	}
	for i := 0; i < c; i++ {
		wg.Add(1)
		ready.Add(1)
		go func(s sess) {
			defer wg.Done()
			defer s.conn.Close()
			_ = s.conn.SetDeadline(time.Now().Add(10 * time.Minute))
			ready.Done()
			<-startGate
			var err error
			switch dir {
			case "up":
				err = bulkUp(s.conn, s.br, total)
			default:
				err = blobDown(s.conn, s.br, total)
			}
			if err != nil {
				errs <- err
				return
			}
			moved.Add(total)
		}(sessions[i])
	}
	ready.Wait()
	start := time.Now()
	close(startGate)
	wg.Wait()
	el := time.Since(start).Seconds()
	close(errs)
	for err := range errs {
		return err
	}
	fmt.Printf("test=tput mode=%s dir=%s clients=%d bytes=%d seconds=%.2f mb_per_second=%.1f\n",
		cl.mode, dir, c, moved.Load(), el, float64(moved.Load())/el/1e6)
	return nil
}

func bulkUp(c net.Conn, br *bufio.Reader, total int64) error {
	// A message body, as a mail client uploads it: DATA, then lines
	// (78 bytes each, none starting with a dot), then the lone dot.
	if _, err := io.WriteString(c, "DATA\r\n"); err != nil {
		return err
	}
	if err := expect(br, "354"); err != nil {
		return err
	}
	chunk := bytes.Repeat(benchload.Line, (64<<10)/len(benchload.Line))
	for sent := int64(0); sent < total; {
		k := min(int64(len(chunk)), total-sent)
		k -= k % int64(len(benchload.Line)) // whole lines only
		if k == 0 {
			k = int64(len(benchload.Line))
		}
		if _, err := c.Write(chunk[:k]); err != nil {
			return err
		}
		sent += k
	}
	if _, err := io.WriteString(c, ".\r\n"); err != nil {
		return err
	}
	return expect(br, "250")
}

func blobDown(c net.Conn, br *bufio.Reader, total int64) error {
	if _, err := fmt.Fprintf(c, "BLOB %d\r\n", total); err != nil {
		return err
	}
	var got int64
	for {
		l, err := br.ReadSlice('\n')
		if err != nil && err != bufio.ErrBufferFull {
			return err
		}
		if len(l) >= 4 && string(l[:4]) == "250 " {
			if got < total {
				return fmt.Errorf("short blob: %d of %d", got, total)
			}
			return nil
		}
		got += int64(len(l))
	}
}

// idle opens n sessions, holds them for hold, and reports how many held.
func (cl *client) idle(n int, hold time.Duration) error {
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var wg sync.WaitGroup
	var failed atomic.Int64
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, _, err := cl.session(ctx)
			if err != nil {
				failed.Add(1)
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	fmt.Printf("test=idle mode=%s open=%d failed=%d\n", cl.mode, len(conns), failed.Load())
	// The script samples the proxy's memory now; a ready file says when.
	if f := os.Getenv("LOADGEN_READY"); f != "" {
		_ = os.WriteFile(f, []byte(strconv.Itoa(len(conns))), 0o644)
	}
	time.Sleep(hold)
	return nil
}
