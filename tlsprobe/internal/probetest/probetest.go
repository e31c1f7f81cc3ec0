// Package probetest holds the loopback servers and certificates the tests
// of tlsprobe and tlsprobe/active share. It must not import tlsprobe (the
// package's own tests import it), so its dialers are plain funcs, which
// tlsprobe.Dialer accepts.
package probetest

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
)

// Dialer is tlsprobe.Dialer's underlying type.
type Dialer = func(ctx context.Context) (net.Conn, error)

// Ctx is a context that bounds one test's probes.
func Ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TCPDialer dials addr.
func TCPDialer(addr string) Dialer {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

// Leaf issues a certificate for 127.0.0.1/localhost with the key type.
func Leaf(t *testing.T, kt certs.KeyType) *certs.Leaf {
	t.Helper()
	ca, err := certs.NewCA("tlsprobe test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Key: kt})
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

// serve accepts on a loopback port until the test ends and runs handle on
// each connection, with a 10 s deadline, closing it afterwards.
func serve(t *testing.T, handle func(net.Conn)) Dialer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return TCPDialer(l.Addr().String())
}

// GoServer serves TLS with cfg on a loopback port until the test ends; each
// connection is closed after the handshake attempt.
func GoServer(t *testing.T, cfg *tls.Config) Dialer {
	t.Helper()
	return serve(t, func(c net.Conn) { _ = tls.Server(c, cfg).Handshake() })
}

// GoReadingServer is a crypto/tls server that, after the handshake, reads
// until the client hangs up, as an application would: renegotiation
// requests are only seen by a server that reads. Each handshake's state
// goes to states when it has room.
func GoReadingServer(t *testing.T, cfg *tls.Config, states chan<- tls.ConnectionState) Dialer {
	t.Helper()
	return serve(t, func(c net.Conn) {
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil {
			return
		}
		if states != nil {
			select {
			case states <- tc.ConnectionState():
			default:
			}
		}
		_, _ = io.Copy(io.Discard, tc)
	})
}

// OpenSSLServer starts `openssl s_server` with args on a free loopback port
// and returns a dialer for it. The process is killed when the test ends.
func OpenSSLServer(t *testing.T, leaf *certs.Leaf, args ...string) Dialer {
	t.Helper()
	bin := peer.Require(t, "openssl")["openssl"]
	dir := t.TempDir()
	certFile, keyFile, err := leaf.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	port := peer.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	all := append([]string{"s_server", "-accept", addr, "-cert", certFile, "-key", keyFile, "-quiet"}, args...)
	cmd := exec.Command(bin, all...)
	// A stdin that never ends: s_server treats EOF on stdin as "close".
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "s_server.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Errorf("openssl s_server (pid %d) did not exit", cmd.Process.Pid)
		}
		stdin.Close()
		logf.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("openssl %s exited: %s", strings.Join(all, " "), log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("openssl s_server not listening on %s: %s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return TCPDialer(addr)
}
