package smtp_test

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

// The SMTP application behind serve's upgrade (smtp, submission, lmtp)
// against curl and swaks, verification on.

func TestCurlSMTP(t *testing.T) {
	s := servetest.Start(t, starttls.SMTP)
	msg := filepath.Join(t.TempDir(), "msg.eml")
	body := "Subject: curl over STARTTLS\r\n\r\nHello from curl.\r\n.leading dot\r\n"
	if err := os.WriteFile(msg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := servetest.Curl(t, "--cacert", s.CA, "smtp://"+s.Addr, "--mail-from", "a@x.test", "--mail-rcpt", "b@x.test", "-T", msg, "-u", "user:secret")
	if err != nil {
		t.Fatalf("curl smtp: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(s.MailDir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d messages stored, want 1", len(files))
	}
	got, _ := os.ReadFile(files[0])
	if !strings.Contains(string(got), "Hello from curl.") || !strings.Contains(string(got), "\r\n.leading dot") || !strings.Contains(string(got), "X-Envelope-To: <b@x.test>") {
		t.Errorf("stored message:\n%s", got)
	}
	// With the wrong password curl must fail: authentication is real.
	if out, err := servetest.Curl(t, "--cacert", s.CA, "smtp://"+s.Addr, "--mail-from", "a@x.test", "--mail-rcpt", "b@x.test", "-T", msg, "-u", "user:wrong"); err == nil {
		t.Errorf("curl with a wrong password succeeded: %s", out)
	}
}

func TestSwaks(t *testing.T) {
	bins := peer.Require(t, "swaks")
	s := servetest.Start(t, starttls.Submission)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["swaks"], "--to", "b@x.test", "--from", "a@x.test", "--server", s.Host, "--port", s.Port,
		"--tls", "--tls-verify", "--tls-ca-path", s.CA, "--auth", "PLAIN", "--auth-user", "user", "--auth-password", "secret",
		"--header", "Subject: swaks over STARTTLS").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "TLS started") || !strings.Contains(string(out), "250 2.0.0 Ok: queued") {
		t.Errorf("swaks transcript:\n%s", out)
	}
	if files, _ := filepath.Glob(filepath.Join(s.MailDir, "*.eml")); len(files) != 1 {
		t.Errorf("%d messages stored, want 1", len(files))
	}
}

// swaks delivers a message over LMTP (LHLO, STARTTLS, verified).
func TestSwaksLMTP(t *testing.T) {
	bins := peer.Require(t, "swaks")
	s := servetest.Start(t, starttls.LMTP)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["swaks"], "--protocol", "LMTP", "--to", "b@x.test", "--from", "a@x.test",
		"--server", s.Host, "--port", s.Port, "--tls", "--tls-verify", "--tls-ca-path", s.CA,
		"--header", "Subject: swaks over LMTP").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks lmtp: %v\n%s", err, out)
	}
	for _, want := range []string{"-> LHLO", "TLS started", "~> LHLO"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("swaks transcript lacks %q:\n%s", want, out)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(s.MailDir, "*.eml")); len(files) != 1 {
		t.Errorf("%d messages stored, want 1", len(files))
	}
}
