package peer

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/loopback"
)

// OpenSSLServer is `openssl s_server` behind a PostgreSQL SSLRequest front:
// the front answers the 8-byte SSLRequest with 'S' and then splices the
// connection to s_server byte for byte, so the TLS a client sees is
// OpenSSL's own (the proxy's terminate mode would put crypto/tls on the
// wire instead). PostgreSQL is the protocol because nothing follows the
// handshake that s_server would have to answer: an SMTP or IMAP client
// asks for capabilities again inside TLS and s_server has no reply.
type OpenSSLServer struct {
	Addr string // the front, on 127.0.0.1: postgres://Addr
	*PKI
	Version string
	Dir     string
}

// OpenSSLServerOptions tune the instance.
type OpenSSLServerOptions struct {
	// Args are added to s_server's command line, e.g. -legacy_renegotiation,
	// -no_ticket, -comp, -client_renegotiation.
	Args []string
}

// pgSSLRequest is the PostgreSQL SSLRequest: length 8, code 80877103.
var pgSSLRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// StartOpenSSLServer starts a pool of s_server processes on free loopback
// ports and the SSLRequest front on another; all stop at cleanup.
func StartOpenSSLServer(t testing.TB, o OpenSSLServerOptions) *OpenSSLServer {
	t.Helper()
	bins := Require(t, "openssl")
	dir := tempDir(t, "s_server")
	pki := newPKI(t, dir, "mail.test")
	s := &OpenSSLServer{PKI: pki, Dir: dir}
	s.Version, _ = run(t, 10*time.Second, bins["openssl"], "version")
	// The leaf alone for -cert, the CA for -cert_chain: s_server sends both.
	leafFile := filepath.Join(dir, "leaf.pem")
	writeFile(t, leafFile, string(firstPEM(t, pki.CertFile)), 0o644)
	// s_server serves one connection at a time; a client that keeps a
	// session open (a probe waiting for a reply inside TLS) would hold up
	// every other, so the front hands each connection to an idle one of a
	// pool of identical instances.
	free := make(chan string, sServerPool)
	for i := 0; i < sServerPool; i++ {
		free <- SServer(t, dir, fmt.Sprintf("s_server%d", i), leafFile, pki.KeyFile,
			append([]string{"-cert_chain", pki.CAFile}, o.Args...)...)
	}
	s.Addr = startPGFront(t, free)
	return s
}

// SServer starts one bare `openssl s_server` with the certificate and key
// files and args on a free 127.0.0.1 port, its log in dir/name.log, and
// returns its address once it listens; it stops at cleanup.
func SServer(t testing.TB, dir, name, certFile, keyFile string, args ...string) string {
	t.Helper()
	bins := Require(t, "openssl", "sh")
	backend := addr(FreePort(t))
	all := append([]string{"s_server", "-accept", backend, "-cert", certFile, "-key", keyFile}, args...)
	// s_server stops at EOF on its stdin (it reads commands there), so
	// stdin is a pipe that stays open; the process group stops at cleanup.
	cmd := "sleep 86400 | exec \"$0\" \"$@\""
	d := startDaemon(t, dir, name, bins["sh"], append([]string{"-c", cmd, bins["openssl"]}, all...)...)
	d.ready(t, backend)
	return backend
}

// firstPEM returns the first PEM block of a file.
func firstPEM(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	end := []byte("-----END CERTIFICATE-----\n")
	if i := bytes.Index(b, end); i >= 0 {
		return b[:i+len(end)]
	}
	t.Fatalf("%s: no certificate", path)
	return nil
}

// sServerPool is the number of s_server instances behind one front.
const sServerPool = 6

// startPGFront listens on a free loopback port; each connection must start
// with an SSLRequest within 10 s, gets 'S', and is then spliced to an idle
// backend from free (10 s at most to get one), which goes back at the end.
func startPGFront(t testing.TB, free chan string) string {
	t.Helper()
	// pgFront sets its own deadlines per phase; the sessions still
	// spliced at cleanup are cut, not waited for.
	return loopback.Serve(t, time.Minute, func(c net.Conn) { pgFront(c, free) })
}

// pgFront serves one connection; every phase has a deadline and the splice
// ends when either side closes or is idle for a minute.
func pgFront(c net.Conn, free chan string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	req := make([]byte, len(pgSSLRequest))
	if _, err := io.ReadFull(c, req); err != nil || !bytes.Equal(req, pgSSLRequest) {
		return
	}
	var backend string
	select {
	case backend = <-free:
		defer func() { free <- backend }()
	case <-time.After(10 * time.Second):
		return
	}
	b, err := net.DialTimeout("tcp", backend, 5*time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	if _, err := c.Write([]byte{'S'}); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			_ = src.SetReadDeadline(time.Now().Add(time.Minute))
			n, err := src.Read(buf)
			if n > 0 {
				_ = dst.SetWriteDeadline(time.Now().Add(time.Minute))
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		// Half-close so that the other direction can finish its last bytes.
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	_ = c.SetDeadline(time.Time{})
	go cp(b, c)
	go cp(c, b)
	<-done
	<-done
}
