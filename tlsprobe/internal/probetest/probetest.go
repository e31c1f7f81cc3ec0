// Package probetest holds the loopback servers and certificates the tests
// of tlsprobe and tlsprobe/active share. It must not import tlsprobe (the
// package's own tests import it), so its dialers are plain funcs, which
// tlsprobe.Dialer accepts.
package probetest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
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
	return TCPDialer(loopback.Serve(t, 10*time.Second, handle))
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
	dir := t.TempDir()
	certFile, keyFile, err := leaf.WriteFiles(dir, "server")
	if err != nil {
		t.Fatal(err)
	}
	return TCPDialer(peer.SServer(t, dir, "s_server", certFile, keyFile, append([]string{"-quiet"}, args...)...))
}
