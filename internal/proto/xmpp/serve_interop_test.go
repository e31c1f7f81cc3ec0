package xmpp_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The XMPP application behind serve's upgrade and direct TLS against
// go-sendxmpp.

// go-sendxmpp (Debian's, go-xmpp inside) upgrades with <starttls/>,
// verifies the certificate, logs in with SASL PLAIN inside TLS, binds a
// resource and sends a message, which the server stores.
func TestGoSendXMPP(t *testing.T) {
	bins := peer.Require(t, "go-sendxmpp")
	s := servetest.Start(t, starttls.XMPP)
	run := func(pass, ca string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bins["go-sendxmpp"], "-u", "user@localhost", "-p", pass, "-j", s.Addr, "--timeout", "5", "b@localhost")
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca, "HOME="+t.TempDir())
		cmd.Stdin = strings.NewReader("hello over xmpp starttls\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("secret", s.CA); err != nil {
		t.Fatalf("go-sendxmpp: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(s.MailDir, "*.xmpp"))
	if len(files) != 1 {
		t.Fatalf("%d messages stored, want 1", len(files))
	}
	if got, _ := os.ReadFile(files[0]); !strings.Contains(string(got), "hello over xmpp starttls") || !strings.Contains(string(got), "X-XMPP-To: b@localhost") {
		t.Errorf("stored message:\n%s", got)
	}
	if out, err := run("wrong", s.CA); err == nil || !strings.Contains(out, "not-authorized") {
		t.Errorf("go-sendxmpp with a wrong password: %v\n%s", err, out)
	}
	// A CA it was not given: the handshake fails before any credentials.
	other, err := os.CreateTemp(t.TempDir(), "empty*.pem")
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	if out, err := run("secret", other.Name()); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("go-sendxmpp trusted a CA it was not given: %v\n%s", err, out)
	}
}

// go-sendxmpp with direct TLS (-t, XEP-0368) against our xmpps server:
// verified, SASL PLAIN inside TLS, the message stored.
func TestGoSendXMPPDirectTLS(t *testing.T) {
	bins := peer.Require(t, "go-sendxmpp")
	s := servetest.Start(t, starttls.XMPPS)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins["go-sendxmpp"], "-t", "-u", "user@localhost", "-p", "secret", "-j", s.Addr, "--timeout", "5", "b@localhost")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+s.CA, "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader("hello over xmpps\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go-sendxmpp -t: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(s.MailDir, "*.xmpp"))
	if len(files) != 1 {
		t.Fatalf("%d messages stored, want 1", len(files))
	}
	if got, _ := os.ReadFile(files[0]); !strings.Contains(string(got), "hello over xmpps") {
		t.Errorf("stored message:\n%s", got)
	}
}
