package proxy

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/proto/imap"
)

// testPKI is a CA and a server certificate for localhost/127.0.0.1 on disk.
type testPKI struct {
	ca                *certs.CA
	caFile            string
	certFile, keyFile string
	dir               string
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	dir := t.TempDir()
	ca, err := certs.NewCA("proxy test CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{ca: ca, dir: dir}
	if p.caFile, err = ca.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	p.issue(t, "server")
	return p
}

// issue writes a new leaf as NAME.pem/NAME.key and makes it the current pair.
func (p *testPKI) issue(t testing.TB, name string) *certs.Leaf {
	t.Helper()
	leaf, err := p.ca.Issue(certs.LeafOptions{Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.certFile, p.keyFile, err = leaf.WriteFiles(p.dir, name); err != nil {
		t.Fatal(err)
	}
	return leaf
}

func (p *testPKI) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost"}
}

// fakeBackend is a plaintext server of one protocol that records every
// line it receives.
type fakeBackend struct {
	addr  string
	mu    sync.Mutex
	lines []string
	conns int
	hdrs  [][]byte // PROXY headers seen (with expectProxy)
	ln    net.Listener
}

func (b *fakeBackend) record(l string) {
	b.mu.Lock()
	b.lines = append(b.lines, l)
	b.mu.Unlock()
}

func (b *fakeBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

func (b *fakeBackend) connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

// startBackend serves proto ("smtp", "lmtp", "imap", "pop3") in plaintext. With
// expectProxy it first reads a PROXY v2 header.
func startBackend(t testing.TB, proto string, expectProxy bool) *fakeBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &fakeBackend{addr: ln.Addr().String(), ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns++
			b.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(60 * time.Second))
				br := bufio.NewReaderSize(c, 64<<10)
				if expectProxy {
					h, err := readProxyHeader(br)
					if err != nil {
						b.record("BAD PROXY HEADER: " + err.Error())
						return
					}
					b.mu.Lock()
					b.hdrs = append(b.hdrs, h)
					b.mu.Unlock()
				}
				switch proto {
				case "smtp", "lmtp":
					b.smtp(c, br, proto == "lmtp")
				case "imap":
					b.imap(c, br)
				case "pop3":
					b.pop3(c, br)
				}
			}()
		}
	}()
	return b
}

func readProxyHeader(br *bufio.Reader) ([]byte, error) {
	h := make([]byte, 16)
	if _, err := io.ReadFull(br, h); err != nil {
		return nil, err
	}
	if string(h[:12]) != string(proxySig) {
		return nil, fmt.Errorf("bad signature %q", h[:12])
	}
	n := int(h[14])<<8 | int(h[15])
	rest := make([]byte, n)
	if _, err := io.ReadFull(br, rest); err != nil {
		return nil, err
	}
	return append(h, rest...), nil
}

// readLine reads one command line, records it without its line ending
// and returns it; false when the client is gone.
func (b *fakeBackend) readLine(br *bufio.Reader) (string, bool) {
	line, err := br.ReadString('\n')
	if err != nil {
		return "", false
	}
	line = strings.TrimRight(line, "\r\n")
	b.record(line)
	return line, true
}

// smtp serves SMTP; with lmtp the message gets one reply per RCPT (apart).
func (b *fakeBackend) smtp(c net.Conn, br *bufio.Reader, lmtp bool) {
	w := func(s string) { _, _ = io.WriteString(c, s) }
	w("220 backend.test ESMTP fake\r\n")
	rcpts := 0
	for i := 0; i < 10000; i++ {
		line, ok := b.readLine(br)
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			w("250-backend.test hello " + arg + "\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
		case "EHLOLAST": // STARTTLS as the last line
			w("250-backend.test\r\n250-SIZE 1000\r\n250 STARTTLS\r\n")
		case "DATA":
			w("354 go ahead\r\n")
			h := sha256.New()
			var n int64
			for {
				l, err := br.ReadSlice('\n')
				if err != nil && err != bufio.ErrBufferFull {
					return
				}
				if string(l) == ".\r\n" {
					break
				}
				h.Write(l)
				n += int64(len(l))
			}
			w(fmt.Sprintf("250 %d %s\r\n", n, hex.EncodeToString(h.Sum(nil))))
			for ; lmtp && rcpts > 1; rcpts-- {
				time.Sleep(100 * time.Millisecond)
				w(fmt.Sprintf("250 %d %s\r\n", n, hex.EncodeToString(h.Sum(nil))))
			}
			rcpts = 0
		case "RCPT":
			rcpts++
			w("250 ok " + line + "\r\n")
		case "BLOB": // BLOB N: N lines of 76 base64-like bytes, then a reply
			var n int
			fmt.Sscan(arg, &n)
			bw := bufio.NewWriterSize(c, 64<<10)
			line := strings.Repeat("QUJDRGVm", 9) + "QUJD\r\n"
			for j := 0; j < n; j++ {
				bw.WriteString(line)
			}
			bw.WriteString("250 blob done\r\n")
			bw.Flush()
		case "TRICKLE": // TRICKLE N MS: N lines, one every MS milliseconds, then a reply
			var n, ms int
			fmt.Sscan(arg, &n, &ms)
			for j := 0; j < n; j++ {
				time.Sleep(time.Duration(ms) * time.Millisecond)
				w(fmt.Sprintf("trickle %d\r\n", j))
			}
			w("250 trickle done\r\n")
		case "SLOW": // answers late: a reply the proxy's own must wait for
			time.Sleep(300 * time.Millisecond)
			w("250 ok SLOW\r\n")
		case "AUTH": // one SASL response, recorded as a line
			w("334 \r\n")
			if _, ok := b.readLine(br); !ok {
				return
			}
			w("235 2.7.0 ok\r\n")
		case "BDAT": // BDAT N [LAST]: the chunk is recorded as "chunk: ..."
			var n int
			fmt.Sscan(arg, &n)
			chunk := make([]byte, n)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return
			}
			b.record("chunk: " + string(chunk))
			w(fmt.Sprintf("250 %d octets\r\n", n))
		case "QUIT":
			w("221 bye\r\n")
			return
		case "DIE": // dies in the middle of a multi-line reply
			w("250-partial\r\n")
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0) // a reset, not a polite close
			}
			return
		default:
			w("250 ok " + line + "\r\n")
		}
	}
}

func (b *fakeBackend) imap(c net.Conn, br *bufio.Reader) {
	w := func(s string) { _, _ = io.WriteString(c, s) }
	w("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED ID] backend ready\r\n")
	for i := 0; i < 10000; i++ {
		line, ok := b.readLine(br)
		if !ok {
			return
		}
		if n, ok := imap.Literal(line); ok { // recorded as "literal: ..."
			if !strings.HasSuffix(line, "+}") {
				w("+ go ahead\r\n")
			}
			lit := make([]byte, n)
			if _, err := io.ReadFull(br, lit); err != nil {
				return
			}
			b.record("literal: " + string(lit))
			if _, err := br.ReadString('\n'); err != nil {
				return
			}
			line = strings.TrimSuffix(line, fmt.Sprintf(" {%d}", n)) // not echoed as a literal
		}
		tag, rest, _ := strings.Cut(line, " ")
		switch strings.ToUpper(rest) {
		case "CAPABILITY":
			w("* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN ID\r\n" + tag + " OK [CAPABILITY IMAP4rev1 STARTTLS AUTH=PLAIN] done\r\n")
		case "FETCH 1 BODY[]":
			body := "* CAPABILITY STARTTLS\r\n250-STARTTLS\r\nSTLS\r\n"
			w(fmt.Sprintf("* 1 FETCH (BODY[] {%d}\r\n%s)\r\n%s OK FETCH done\r\n", len(body), body, tag))
		case "LOGOUT":
			w("* BYE bye\r\n" + tag + " OK LOGOUT\r\n")
			return
		default:
			w(tag + " OK " + rest + "\r\n")
		}
	}
}

func (b *fakeBackend) pop3(c net.Conn, br *bufio.Reader) {
	w := func(s string) { _, _ = io.WriteString(c, s) }
	w("+OK backend ready\r\n")
	for i := 0; i < 10000; i++ {
		line, ok := b.readLine(br)
		if !ok {
			return
		}
		verb, _, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "SLOW":
			time.Sleep(300 * time.Millisecond)
			w("+OK SLOW\r\n")
		case "CAPA":
			w("+OK caps\r\nTOP\r\nSTLS\r\nUSER\r\nSASL PLAIN\r\n.\r\n")
		case "RETR":
			w("+OK message\r\nSubject: x\r\n\r\nSTLS\r\n..dot\r\n.\r\n")
		case "QUIT":
			w("+OK bye\r\n")
			return
		default:
			w("+OK " + line + "\r\n")
		}
	}
}

// startProxy runs a server with the listeners until the test ends.
func startProxy(t testing.TB, o Options, ls ...Listener) *Server {
	t.Helper()
	for i := range ls {
		if ls[i].Listen == "" {
			ls[i].Listen = "127.0.0.1:0"
		}
	}
	srv, err := New(o, ls...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Error("proxy did not stop within 15 s")
		}
	})
	return srv
}

func terminateListener(t testing.TB, pki *testPKI, proto starttls.Protocol, backend string) Listener {
	t.Helper()
	cs, err := LoadCertStore(pki.certFile, pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return Listener{Mode: Terminate, Protocol: proto, Backend: backend, Certificates: cs, Hostname: "proxy.test"}
}

// lineConn is a small line client for raw dialogues.
type lineConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialLines(t testing.TB, addr string) *lineConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	return &lineConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (l *lineConn) send(s string) {
	l.t.Helper()
	if _, err := io.WriteString(l.c, s); err != nil {
		l.t.Fatalf("write %q: %v", s, err)
	}
}

func (l *lineConn) line() string {
	l.t.Helper()
	s, err := l.br.ReadString('\n')
	if err != nil {
		l.t.Fatalf("read: %v (partial %q)", err, s)
	}
	return strings.TrimRight(s, "\r\n")
}

// smtpReply reads one reply's lines.
func (l *lineConn) smtpReply() []string {
	l.t.Helper()
	var out []string
	for i := 0; i < 100; i++ {
		s := l.line()
		out = append(out, s)
		if len(s) < 4 || s[3] != '-' {
			return out
		}
	}
	l.t.Fatal("reply too long")
	return nil
}

// startTLS switches the line client to TLS.
func (l *lineConn) startTLS(cfg *tls.Config) {
	l.t.Helper()
	if l.br.Buffered() > 0 {
		l.t.Fatalf("bytes buffered before TLS")
	}
	tc := tls.Client(l.c, cfg)
	if err := tc.Handshake(); err != nil {
		l.t.Fatalf("handshake: %v", err)
	}
	l.c = tc
	l.br = bufio.NewReader(tc)
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return cond()
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// countingMetrics records failures and handshakes for assertions.
type countingMetrics struct {
	NopMetrics
	mu         sync.Mutex
	failures   map[string]int
	handshakes int
	bytes      map[string]int
}

func newCountingMetrics() *countingMetrics {
	return &countingMetrics{failures: map[string]int{}, bytes: map[string]int{}}
}

func (m *countingMetrics) Failure(_, reason string) {
	m.mu.Lock()
	m.failures[reason]++
	m.mu.Unlock()
}

func (m *countingMetrics) Handshake(string, tls.ConnectionState, time.Duration) {
	m.mu.Lock()
	m.handshakes++
	m.mu.Unlock()
}

func (m *countingMetrics) Bytes(_, dir string, n int) {
	m.mu.Lock()
	m.bytes[dir] += n
	m.mu.Unlock()
}

func (m *countingMetrics) failure(reason string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failures[reason]
}

func (m *countingMetrics) handshakeCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.handshakes
}
