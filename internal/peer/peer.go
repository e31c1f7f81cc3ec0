// Package peer starts real Debian daemons (Postfix, Dovecot, ...) on
// loopback ports for interop tests, each with its own configuration under
// a temporary directory and a certificate from a generated CA. Nothing is
// started as a system service and everything stops when the test ends.
package peer

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
)

// sbinDirs are searched besides PATH: daemons live in sbin directories
// that a test's PATH may lack.
var sbinDirs = []string{"/usr/sbin", "/sbin", "/usr/lib/postfix/sbin", "/usr/lib/dovecot", "/usr/lib/news/bin"}

// Look finds a binary in PATH or the sbin directories.
func Look(name string) (string, bool) {
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, d := range sbinDirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// Require returns the paths of the binaries. A missing one skips the test
// with the reason, except under CI (CI=true), where it fails: CI installs
// every peer, so a missing one is a broken set-up, not an excuse.
func Require(t testing.TB, binaries ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, b := range binaries {
		p, ok := Look(b)
		if !ok {
			msg := fmt.Sprintf("%s not installed (run .ci/install-deps.sh as root)", b)
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		paths[b] = p
	}
	return paths
}

// Unavailable skips the test with the reason, except under CI (CI=true),
// where the set-up is expected to provide everything and it fails.
func Unavailable(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// waitPorts polls until every address accepts connections or the deadline
// passes; then it fails the test with the daemon's log.
func waitPorts(t testing.TB, logFile string, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for _, a := range addrs {
		for i := 0; ; i++ {
			c, err := net.DialTimeout("tcp", a, 500*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("peer did not listen on %s within 15 s: %v\nlog %s:\n%s", a, err, logFile, tail(logFile))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// waitLog polls a daemon's log until it contains marker (15 s at most).
func waitLog(t testing.TB, logFile, marker string) {
	t.Helper()
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if b, err := os.ReadFile(logFile); err == nil && strings.Contains(string(b), marker) {
			return
		}
	}
	t.Fatalf("no %q in %s within 15 s:\n%s", marker, logFile, tail(logFile))
}

func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// run executes a command with a deadline and returns its combined output.
func run(t testing.TB, timeout time.Duration, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// PKI is a CA and a server certificate written into a directory.
type PKI struct {
	CA       *certs.CA
	CAFile   string
	CertFile string // leaf followed by the CA
	KeyFile  string
}

// newPKI makes a CA and a leaf for the given names (plus localhost and
// 127.0.0.1) in dir.
func newPKI(t testing.TB, dir string, names ...string) *PKI {
	t.Helper()
	ca, err := certs.NewCA("starttls peer test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Hosts: append(names, "localhost", "127.0.0.1", "127.0.0.2"), Key: certs.RSA2048})
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile, err := leaf.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	return &PKI{CA: ca, CAFile: caFile, CertFile: certFile, KeyFile: keyFile}
}

func writeFile(t testing.TB, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func addr(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// daemon is a process started by startDaemon.
type daemon struct {
	cmd    *exec.Cmd
	exited chan struct{} // closed when the process has ended
	log    string
}

// startDaemon runs a daemon in the foreground with its output in
// dir/name.log, and stops it at cleanup: SIGTERM first so that it can stop
// its children and close its files, a kill after 10 s.
func startDaemon(t testing.TB, dir, name, bin string, args ...string) *daemon {
	t.Helper()
	return startDaemonStop(t, dir, name, os.Interrupt, bin, args...)
}

// startDaemonStop is startDaemon for daemons whose clean shutdown is
// another signal (SIGTERM for mariadbd).
func startDaemonStop(t testing.TB, dir, name string, stop os.Signal, bin string, args ...string) *daemon {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, args...)
	d := &daemon{cmd: cmd, exited: make(chan struct{}), log: filepath.Join(dir, name+".log")}
	out, err := os.Create(d.log)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	// Its own process group: wrappers (postfix start-fg, env, runuser) run
	// the daemon as a child, and the whole group must stop with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Start(); err != nil {
		cancel()
		out.Close()
		t.Fatalf("%s: %v", name, err)
	}
	go func() { _ = cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		sig, _ := stop.(syscall.Signal)
		_ = syscall.Kill(-cmd.Process.Pid, sig)
		select {
		case <-d.exited:
		case <-time.After(10 * time.Second):
			cancel()
			<-d.exited
		}
		// Whatever of the group outlived the leader goes too.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cancel()
		out.Close()
	})
	return d
}

// stopPidFile stops the process named in a pid file: SIGTERM, then
// SIGKILL if it is still there after 10 s.
func stopPidFile(path string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 100; i++ {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
}

// ready waits for the addresses to accept connections, failing at once
// with the log if the daemon exits first.
func (d *daemon) ready(t testing.TB, addrs ...string) {
	t.Helper()
	select {
	case <-d.exited:
		t.Fatalf("%s exited at start (%v):\n%s", filepath.Base(d.cmd.Path), d.cmd.ProcessState, tail(d.log))
	case <-time.After(100 * time.Millisecond):
	}
	waitPorts(t, d.log, addrs...)
}

// tempDir makes a world-readable temporary directory removed at cleanup;
// daemons that drop privileges must be able to enter it.
func tempDir(t testing.TB, name string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "starttls-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	return dir
}
