// Package servetest starts serve's servers for the end-to-end tests of
// each protocol's application, kept in internal/proto/NAME beside the
// application: a throwaway CA, the user "user" with the password
// "secret", a mail directory, and the native or library clients run
// against it with bounded time.
//
// Those tests are external (package NAME_test): serve and the root
// package import every protocol folder, so a folder's internal test
// cannot import them. Tests that need no listener run the application
// through internal/proto/registry/registrytest instead.
package servetest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/serve"
)

// Server is a running serve server of one protocol.
type Server struct {
	Addr, Host, Port string
	// CA is the PEM file of the throwaway CA that signed the server's
	// certificate; Roots holds the same CA.
	CA    string
	Roots *x509.CertPool
	// MailDir receives what the application stores.
	MailDir string
}

// Start serves p on loopback until the test ends.
func Start(t *testing.T, p starttls.Protocol) *Server {
	t.Helper()
	dir := t.TempDir()
	cfg, ca, err := serve.ThrowawayTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	s, err := serve.Start(context.Background(), serve.Options{Protocol: p, TLSConfig: cfg, MailDir: mail,
		Users: map[string]string{"user": "secret"}, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	host, port, _ := strings.Cut(s.Addr.String(), ":")
	return &Server{Addr: s.Addr.String(), Host: host, Port: port, CA: ca, Roots: roots, MailDir: mail}
}

// Dial upgrades a connection to s with the library's client, verifying
// the certificate, and gives it a deadline.
func (s *Server) Dial(t *testing.T, p starttls.Protocol) *starttls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, p, s.Addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: s.Roots, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// OtherCA returns the PEM file of a CA that signed nothing s serves.
func OtherCA(t *testing.T) string {
	t.Helper()
	_, ca, err := serve.ThrowawayTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// RunClient runs a native client with a bounded time and returns its
// combined output.
func RunClient(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ClientVersion logs the first line of a client's version output.
func ClientVersion(t *testing.T, name string, args ...string) {
	t.Helper()
	out, _ := RunClient(t, nil, name, args...)
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	t.Logf("client: %s", first)
}

// WantAll reports each of wants that out lacks.
func WantAll(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// Curl runs curl with TLS required (--ssl-reqd) and a bounded time.
func Curl(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bins := peer.Require(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["curl"], append([]string{"-sS", "--ssl-reqd"}, args...)...).CombinedOutput()
	return string(out), err
}
