package watch

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/serve"
	"github.com/starttls-go/starttls/watch/store"
)

// mailRoute starts our own submission server on loopback (STARTTLS
// required, AUTH after TLS only) and returns a watcher whose one route
// mails through it with password pw and CA file ca ("" for the
// server's).
func mailRoute(t *testing.T, pw string, trust bool) (*Watcher, string) {
	t.Helper()
	dir := t.TempDir()
	tc, caFile, err := serve.ThrowawayTLS(dir, "localhost", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	maildir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := serve.Start(ctx, serve.Options{Protocol: starttls.Submission, TLSConfig: tc, MailDir: maildir,
		Users: map[string]string{"watch": "s3cret"}, Policy: starttls.Required})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); srv.Close() })
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte(pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ca := ""
	if trust {
		ca = "\n      ca: " + caFile
	}
	cfg, err := ParseConfig("m.yaml", []byte(fmt.Sprintf(`
targets:
  - url: smtp://127.0.0.1:2525
alerts:
  - name: ops
    mail:
      server: submission://%s
      from: watch@example.test
      to: [ops@example.test, oncall@example.test]
      username: watch
      password_file: %s%s
`, srv.Addr, pwFile, ca)))
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(context.Background(), cfg, &flaky{})
	if err != nil {
		t.Fatal(err)
	}
	w.Log = quiet()
	return w, maildir
}

var mailChanges = []store.Change{
	{Subject: "target:smtp://127.0.0.1:2525", At: t0, Kind: CertExpiring, Severity: "high", Message: "cert expires in 5 days"},
	{Subject: "target:smtp://127.0.0.1:2525", At: t0, Kind: FindingAppeared, Severity: "medium", Message: "new finding, subject CN=evil\r\n.\r\nRCPT TO:<x@y>"},
	{Subject: "target:smtp://127.0.0.1:2525", At: t0, Kind: FindingAppeared, Severity: "medium", Message: "new finding, subject CN=evil\r\n.\r\nRCPT TO:<x@y>"},
}

func messages(t *testing.T, dir string) []string {
	t.Helper()
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// An alert goes out by mail over verified STARTTLS with AUTH PLAIN:
// one message for the window, to every recipient, repeats folded, and
// peer text with line breaks cannot end the message or add commands.
func TestMailAlert(t *testing.T) {
	w, maildir := mailRoute(t, "s3cret", true)
	w.alerts.add(nil, mailChanges)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w.Flush(ctx)
	if w.Metrics.AlertsSent.Load() != 1 || w.Metrics.AlertFails.Load() != 0 {
		t.Fatalf("sent %d failed %d", w.Metrics.AlertsSent.Load(), w.Metrics.AlertFails.Load())
	}
	msgs := messages(t, maildir)
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	for _, want := range []string{"X-Envelope-To: <ops@example.test>, <oncall@example.test>", "Subject: [starttls watch] 2 change(s): cert expires in 5 days",
		"[HIGH] cert expires in 5 days", "CN=evil??.??RCPT TO:<x@y> (x2)"} {
		if !strings.Contains(m, want) {
			t.Errorf("message lacks %q:\n%s", want, m)
		}
	}
	// Nothing pending: a second flush sends nothing.
	w.Flush(ctx)
	if len(messages(t, maildir)) != 1 {
		t.Fatal("a second flush sent again")
	}
}

// A wrong password or an untrusted certificate: nothing is sent and the
// failure is counted.
func TestMailAlertRefused(t *testing.T) {
	for _, c := range []struct {
		name  string
		pw    string
		trust bool
		want  string
	}{{"password", "wrong", true, "535"}, {"certificate", "s3cret", false, "certificate"}} {
		t.Run(c.name, func(t *testing.T) {
			w, maildir := mailRoute(t, c.pw, c.trust)
			var logs strings.Builder
			w.Log = slogTo(&logs)
			w.alerts.add(nil, mailChanges[:1])
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			w.Flush(ctx)
			if w.Metrics.AlertFails.Load() != 1 || len(messages(t, maildir)) != 0 || !strings.Contains(logs.String(), c.want) {
				t.Fatalf("fails %d, %d messages, log %s", w.Metrics.AlertFails.Load(), len(messages(t, maildir)), logs.String())
			}
		})
	}
}

// Routes, the sender `starttls tlsrpt` uses, mails through the same code
// as the watcher: one message per Send, and a refused password or an
// unknown route name is an error.
func TestWatchRoutesMail(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tc := []store.Change{{Subject: "tlsrpt:example.org", At: t0, Kind: "tlsrpt-policy-error", Severity: "high",
		Message: "c.test reports sts-policy-fetch-error for example.org", Detail: map[string]any{"organization": "c.test"}}}
	w, maildir := mailRoute(t, "s3cret", true)
	r, err := NewRoutes(w.Config())
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Send(ctx, nil, tc); err != nil {
		t.Fatal(err)
	}
	msgs := messages(t, maildir)
	if len(msgs) != 1 || !strings.Contains(msgs[0], "Subject: [starttls watch] 1 change(s): c.test reports sts-policy-fetch-error for example.org") ||
		!strings.Contains(msgs[0], "[HIGH] c.test reports sts-policy-fetch-error") || r.Sent() != 1 {
		t.Fatalf("%d messages, sent %d: %v", len(msgs), r.Sent(), msgs)
	}
	if err := r.Send(ctx, []string{"pager"}, tc); err == nil || !strings.Contains(err.Error(), `no alert route named "pager"`) {
		t.Errorf("unknown route: %v", err)
	}
	// Nothing at or above min_severity: no message.
	if err := r.Send(ctx, nil, nil); err != nil || len(messages(t, maildir)) != 1 {
		t.Errorf("empty send: %v, %d messages", err, len(messages(t, maildir)))
	}

	w, maildir = mailRoute(t, "wrong", true)
	if r, err = NewRoutes(w.Config()); err != nil {
		t.Fatal(err)
	}
	if err := r.Send(ctx, nil, tc); err == nil || !strings.Contains(err.Error(), "route ops: mail:") || !strings.Contains(err.Error(), "535") ||
		len(messages(t, maildir)) != 0 || r.Failed() != 1 {
		t.Errorf("refused: %v, %d messages, failed %d", err, len(messages(t, maildir)), r.Failed())
	}
}
