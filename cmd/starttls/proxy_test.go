package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
)

func TestProxyUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("listeners:\n  - mode: terminate\n    proto: smtp\n    listen: 127.0.0.1:0\n    backend: 127.0.0.1:1\n    cert: x.pem\n    key: x.key\n    bogus: 1\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no proto", []string{"proxy", "--mode", "terminate"}, "--proto: missing"},
		{"bad mode", []string{"proxy", "--mode", "sideways", "--proto", "smtp", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"}, "--mode: \"sideways\""},
		{"no cert", []string{"proxy", "--mode", "terminate", "--proto", "smtp", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1"}, "--cert: mode terminate needs cert and key"},
		{"config and flags", []string{"proxy", "--config", bad, "--proto", "smtp"}, "--proto: listener flags and --config exclude each other"},
		{"config line", []string{"proxy", "--config", bad}, bad + ":8: unknown key \"bogus\""},
		{"bad log format", []string{"proxy", "--mode", "originate", "--proto", "smtp", "--listen", "127.0.0.1:0", "--backend", "127.0.0.1:1", "--log-format", "xml"}, "--log-format \"xml\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, "", tc.args...)
			if code != exitUsage || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stderr %q, stdout %q; want exit 2 and %q", code, errs, out, tc.want)
			}
		})
	}
}

func TestProxyCheck(t *testing.T) {
	p := newCLIPKI(t)
	cfg := filepath.Join(p.dir, "proxy.yaml")
	os.WriteFile(cfg, []byte("listeners:\n  - name: sub\n    mode: terminate\n    proto: submission\n    listen: 127.0.0.1:0\n    backend: 127.0.0.1:10587\n    cert: server.pem\n    key: server.key\n"), 0o644)
	code, out, errs := runCLI(t, "", "proxy", "--config", cfg, "--check")
	if code != 0 || !strings.Contains(out, "ok: sub: terminate submission 127.0.0.1:0 -> 127.0.0.1:10587") {
		t.Errorf("exit %d\n%s\n%s", code, out, errs)
	}
}

type cliPKI struct {
	ca                *certs.CA
	dir               string
	certFile, keyFile string
}

func newCLIPKI(t *testing.T) *cliPKI {
	t.Helper()
	ca, err := certs.NewCA("proxy cli test CA")
	if err != nil {
		t.Fatal(err)
	}
	p := &cliPKI{ca: ca, dir: t.TempDir()}
	p.issue(t)
	return p
}

// issue writes a new leaf into the same files and returns its serial.
func (p *cliPKI) issue(t *testing.T) *big.Int {
	t.Helper()
	leaf, err := p.ca.Issue(certs.LeafOptions{Hosts: []string{"localhost", "127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if p.certFile, p.keyFile, err = leaf.WriteFiles(p.dir, "server"); err != nil {
		t.Fatal(err)
	}
	return leaf.Cert.SerialNumber
}

// plainSMTP is a plaintext SMTP backend answering EHLO (with STARTTLS, to
// be removed by the proxy), NOOP and QUIT.
func plainSMTP(t *testing.T) string {
	t.Helper()
	return loopback.Serve(t, 30*time.Second, func(c net.Conn) {
		io.WriteString(c, "220 backend ESMTP\r\n")
		br := bufio.NewReader(c)
		for i := 0; i < 100; i++ {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			switch strings.ToUpper(strings.Fields(l + " x")[0]) {
			case "EHLO":
				io.WriteString(c, "250-backend\r\n250-STARTTLS\r\n250 PIPELINING\r\n")
			case "QUIT":
				io.WriteString(c, "221 bye\r\n")
				return
			default:
				io.WriteString(c, "250 ok\r\n")
			}
		}
	})
}

// proxyProc is a running `starttls proxy`.
type proxyProc struct {
	cmd     *exec.Cmd
	stdout  *lineLog
	stderr  *lineLog
	addr    string
	metrics string
}

type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) run(r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		l.mu.Lock()
		l.lines = append(l.lines, sc.Text())
		l.mu.Unlock()
	}
}

func (l *lineLog) find(sub string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			return s, true
		}
	}
	return "", false
}

func (l *lineLog) count(sub string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, sub) {
			n++
		}
	}
	return n
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func waitUntil(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(25 * time.Millisecond)
	}
	return cond()
}

// buildCLI builds the command once per test binary.
var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

func buildCLI(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "starttls-cli-")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "starttls")
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = err
			buildPath = string(out)
		}
	})
	if buildErr != nil {
		t.Fatalf("go build: %v\n%s", buildErr, buildPath)
	}
	return buildPath
}

func startProxyProc(t *testing.T, args ...string) *proxyProc {
	t.Helper()
	bin := buildCLI(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, append([]string{"proxy"}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	so, _ := cmd.StdoutPipe()
	se, _ := cmd.StderrPipe()
	p := &proxyProc{cmd: cmd, stdout: &lineLog{}, stderr: &lineLog{}}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go p.stdout.run(so)
	go p.stderr.run(se)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cancel()
			<-done
		}
		cancel()
	})
	if !waitUntil(15*time.Second, func() bool { _, ok := p.stdout.find("listening on "); return ok }) {
		t.Fatalf("proxy did not start:\n%s\n%s", p.stdout, p.stderr)
	}
	l, _ := p.stdout.find("listening on ")
	p.addr = strings.Fields(strings.TrimPrefix(l, "listening on "))[0]
	if m, ok := p.stdout.find("metrics on http://"); ok {
		p.metrics = strings.TrimPrefix(m, "metrics on ")
	}
	return p
}

func dialThrough(t *testing.T, addr string, p *cliPKI) *starttls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, starttls.SMTP, addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if c.Capabilities.Has("STARTTLS") || !c.Capabilities.Has("PIPELINING") {
		t.Errorf("capabilities through the proxy: %q", c.Capabilities)
	}
	return c
}

func serialOf(c *starttls.Conn) *big.Int { return c.ConnectionState().PeerCertificates[0].SerialNumber }

// The command end to end: SIGHUP and file changes reload the certificate
// for new sessions while an old session keeps working; JSON logs;
// Prometheus metrics; SIGTERM drains and exits 0.
func TestProxyReloadMetricsShutdown(t *testing.T) {
	p := newCLIPKI(t)
	backend := plainSMTP(t)
	pp := startProxyProc(t, "--mode", "terminate", "--proto", "smtp", "--listen", "127.0.0.1:0", "--backend", backend,
		"--cert", p.certFile, "--key", p.keyFile, "--metrics", "127.0.0.1:0", "--log-format", "json",
		"--watch-interval", "100ms", "--drain-timeout", "2s", "--name", "smtp-in")
	old := dialThrough(t, pp.addr, p)
	first := serialOf(old)

	// A file change alone is noticed.
	second := p.issue(t)
	if !waitUntil(5*time.Second, func() bool { return pp.stderr.count(`"trigger":"file-change"`) >= 1 }) {
		t.Fatalf("no reload on file change:\n%s", pp.stderr)
	}
	if got := serialOf(dialThrough(t, pp.addr, p)); got.Cmp(second) != 0 {
		t.Errorf("after file change: serial %s, want %s (old %s)", got, second, first)
	}
	// SIGHUP reloads too.
	third := p.issue(t)
	if err := pp.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !waitUntil(5*time.Second, func() bool { return pp.stderr.count(`"trigger":"SIGHUP"`) >= 1 }) {
		t.Fatalf("no reload on SIGHUP:\n%s", pp.stderr)
	}
	if got := serialOf(dialThrough(t, pp.addr, p)); got.Cmp(third) != 0 {
		t.Errorf("after SIGHUP: serial %s, want %s", got, third)
	}
	// The first session survived both reloads.
	io.WriteString(old, "NOOP\r\n")
	if l, err := old.ReadLine(); err != nil || l != "250 ok" {
		t.Errorf("old session: %q %v", l, err)
	}

	// Metrics.
	if pp.metrics == "" {
		t.Fatalf("no metrics address:\n%s", pp.stdout)
	}
	resp, err := http.Get(pp.metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`starttls_proxy_connections_total{listener="smtp-in"} 3`,
		`starttls_proxy_handshakes_total{cipher="TLS_AES_128_GCM_SHA256",listener="smtp-in",version="TLS 1.3"} 3`,
		`starttls_proxy_certificate_reloads_total{file="` + p.certFile + `",result="ok"}`,
		`starttls_proxy_handshake_seconds_bucket{listener="smtp-in"`,
		`starttls_proxy_latency_seconds_bucket{listener="smtp-in",phase="setup"`,
		`starttls_proxy_bytes_total{direction="client_to_backend",listener="smtp-in"}`,
		`starttls_proxy_sessions_active{listener="smtp-in"}`,
		`starttls_proxy_certificate_not_after_seconds`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// SIGTERM: drains (the old session is closed at the bound) and exits 0.
	start := time.Now()
	pp.cmd.Process.Signal(syscall.SIGTERM)
	err = pp.cmd.Wait()
	if err != nil {
		t.Errorf("exit: %v\n%s", err, pp.stderr)
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	// Every log line is JSON with a level and a message.
	time.Sleep(100 * time.Millisecond)
	pp.stderr.mu.Lock()
	defer pp.stderr.mu.Unlock()
	for _, l := range pp.stderr.lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("log line not JSON: %q", l)
		}
	}
	if !strings.Contains(strings.Join(pp.stderr.lines, "\n"), `"msg":"session closed"`) {
		t.Errorf("no session log:\n%s", strings.Join(pp.stderr.lines, "\n"))
	}
}

// Many listeners from a file; a backend that is down gives a clean 421.
func TestProxyConfigFile(t *testing.T) {
	p := newCLIPKI(t)
	backend := plainSMTP(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	cfg := filepath.Join(p.dir, "proxy.yaml")
	os.WriteFile(cfg, []byte(`log_format: text
listeners:
  - name: up
    mode: terminate
    proto: smtp
    listen: 127.0.0.1:0
    backend: `+backend+`
    cert: server.pem
    key: server.key
  - name: down
    mode: implicit
    proto: smtps
    listen: 127.0.0.1:0
    backend: `+dead+`
    cert: server.pem
    key: server.key
`), 0o644)
	pp := startProxyProc(t, "--config", cfg)
	if !waitUntil(5*time.Second, func() bool { return pp.stdout.count("listening on ") == 2 }) {
		t.Fatalf("listeners:\n%s", pp.stdout)
	}
	var addrs []string
	pp.stdout.mu.Lock()
	for _, l := range pp.stdout.lines {
		if strings.HasPrefix(l, "listening on ") {
			addrs = append(addrs, strings.Fields(strings.TrimPrefix(l, "listening on "))[0])
		}
	}
	pp.stdout.mu.Unlock()
	dialThrough(t, addrs[0], p)
	c, err := tls.Dial("tcp", addrs[1], &tls.Config{RootCAs: p.ca.Pool(), ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	l, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(l, "421 4.3.0") {
		t.Errorf("down backend: %q %v", l, err)
	}
	if !waitUntil(3*time.Second, func() bool { _, ok := pp.stderr.find("reason=backend-unavailable"); return ok }) {
		t.Errorf("no logged reason:\n%s", pp.stderr)
	}
}
