package proxy

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// The idle-sessions test needs three descriptors per session besides the
// proxy's two; its clients and backend run in a child process (this test
// binary again) so that each process stays under its descriptor limit.
const idleChildEnv = "STARTTLS_PROXY_IDLE_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(idleChildEnv) != "" {
		idleChild()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// idleChild runs a plaintext IMAP backend, prints its address, reads the
// proxy's address and the CA file from stdin, opens N TLS sessions through
// the proxy, reads each greeting, prints "ready N", and closes them all
// when stdin ends.
func idleChild() {
	n, _ := strconv.Atoi(os.Getenv(idleChildEnv))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		return
	}
	var held sync.Map
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held.Store(c, true)
			_, _ = io.WriteString(c, "* OK backend ready\r\n")
		}
	}()
	fmt.Println(ln.Addr().String())
	in := bufio.NewReader(os.Stdin)
	line, _ := in.ReadString('\n')
	proxyAddr, caFile, _ := strings.Cut(strings.TrimSpace(line), " ")
	pem, _ := os.ReadFile(caFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(1)}
	conns := make([]net.Conn, 0, n)
	var opened atomic.Int64
	var mu sync.Mutex
	sem := make(chan struct{}, 32)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d := net.Dialer{Timeout: 10 * time.Second}
			c, err := tls.DialWithDialer(&d, "tcp", proxyAddr, cfg)
			if err != nil {
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if l, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.Contains(l, "backend ready") {
				c.Close()
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			opened.Add(1)
		}()
	}
	wg.Wait()
	fmt.Println("ready", opened.Load())
	_, _ = io.Copy(io.Discard, in)
	for _, c := range conns {
		c.Close()
	}
	ln.Close()
}

// 5,000 idle sessions through implicit mode: every one gets its greeting,
// the proxy's memory per session stays bounded, and when the clients
// leave every session ends.
func TestManyIdleSessions(t *testing.T) {
	if testing.Short() {
		t.Skip("5,000 sessions: not in -short")
	}
	const n = 5000
	pki := newTestPKI(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), idleChildEnv+"="+strconv.Itoa(n))
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	out := bufio.NewReader(stdout)
	backend, err := out.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	l := terminateListener(t, pki, starttls.IMAPS, strings.TrimSpace(backend))
	l.Mode = Implicit
	m := &activeMetrics{}
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	srv := startProxy(t, Options{Metrics: m}, l)
	fmt.Fprintf(stdin, "%s %s\n", srv.Addr(0), pki.caFile)
	readyCh := make(chan string, 1)
	go func() {
		line, _ := out.ReadString('\n')
		readyCh <- strings.TrimSpace(line)
	}()
	var ready string
	select {
	case ready = <-readyCh:
	case <-time.After(3 * time.Minute):
		t.Fatal("clients did not finish opening sessions within 3 minutes")
	}
	if ready != fmt.Sprintf("ready %d", n) {
		t.Fatalf("child: %q, want all %d sessions greeted", ready, n)
	}
	if !waitFor(10*time.Second, func() bool { return m.active.Load() == n }) {
		t.Fatalf("%d active sessions, want %d", m.active.Load(), n)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	used := int64(after.HeapInuse+after.StackInuse) - int64(before.HeapInuse+before.StackInuse)
	per := used / n
	t.Logf("%d idle sessions: %d KiB in all, %d KiB per session (heap+stacks)", n, used>>10, per>>10)
	// Two goroutines, two TLS/TCP buffers and a relay buffer per session;
	// the bench measured ~70 kB RSS. The bound catches a leak or a
	// per-session buffer of megabytes, not small drift.
	if per > 256<<10 {
		t.Errorf("%d bytes per idle session, want under 256 KiB", per)
	}
	stdin.Close()
	if !waitFor(60*time.Second, func() bool { return m.active.Load() == 0 }) {
		t.Errorf("%d sessions still active a minute after every client left", m.active.Load())
	}
}

// activeMetrics follows the active-sessions gauge.
type activeMetrics struct {
	NopMetrics
	active atomic.Int64
}

func (m *activeMetrics) Active(_ string, delta int) { m.active.Add(int64(delta)) }
