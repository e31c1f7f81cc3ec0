package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
)

// evil clears the screen and retitles the window on a terminal.
const evil = "\x1b[2J\x1b]0;pwned\x07"

// testPKI is a throwaway CA, its file, and a leaf for 127.0.0.1/localhost.
type testPKI struct {
	ca     *certs.CA
	caFile string
	leaf   tls.Certificate
}

func newTestPKI(t *testing.T, modify func(*x509.Certificate)) testPKI {
	t.Helper()
	ca, err := certs.NewCA("cli test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Modify: modify})
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.CertPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return testPKI{ca: ca, caFile: caFile, leaf: leaf.TLS}
}

// libServer serves proto with the library on loopback; handler runs
// inside TLS (nil: close at once).
func libServer(t *testing.T, proto starttls.Protocol, cfg starttls.ServerConfig, handler func(context.Context, *starttls.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	if handler == nil {
		handler = func(ctx context.Context, c *starttls.Conn) { c.Close() }
	}
	srv := &starttls.Server{Protocol: proto, Config: cfg, Handler: handler}
	go func() { _ = srv.Serve(ctx, l) }()
	return l.Addr().String()
}

// evilSMTP answers inside TLS with capabilities that carry escapes.
func evilSMTP(ctx context.Context, c *starttls.Conn) {
	defer c.Close()
	for i := 0; i < 20; i++ {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		switch strings.ToUpper(strings.Fields(line + " x")[0]) {
		case "EHLO":
			_, _ = c.Write([]byte("250-localhost " + evil + "\r\n250-X-" + evil + "\x9b31m\u202e\xff\r\n250 AUTH PLAIN\r\n"))
		case "QUIT":
			_, _ = c.Write([]byte("221 2.0.0 Bye " + evil + "\r\n"))
			return
		default:
			_, _ = c.Write([]byte("250 OK\r\n"))
		}
	}
}

func evilPKI(t *testing.T) testPKI {
	return newTestPKI(t, func(c *x509.Certificate) {
		c.Subject.CommonName = "leaf" + evil
		c.DNSNames = append(c.DNSNames, "x"+evil+".test")
	})
}

// Every peer-supplied string in the human reports of connect and check
// (greeting, capabilities before and after TLS, transcript, certificate
// subject and SANs, error replies) reaches the terminal escaped.
func TestTerminalSafeReports(t *testing.T) {
	pki := evilPKI(t)
	addr := libServer(t, starttls.SMTP, starttls.ServerConfig{
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{pki.leaf}},
		Hostname:     "localhost" + evil,
		Capabilities: []string{"X-EVIL" + evil},
	}, evilSMTP)
	runs := map[string][]string{
		"connect": {"connect", "--ca", pki.caFile, "smtp://" + addr},
		"check":   {"check", "--only", "quick", "--fail-on", "critical", "--ca", pki.caFile, "smtp://" + addr},
	}
	for name, args := range runs {
		t.Run(name, func(t *testing.T) {
			_, out, errs := runCLI(t, "", args...)
			// What follows the report is the session: a byte pipe when
			// stdout is not a terminal (TestTermWriter covers a terminal).
			report, _, _ := strings.Cut(out, "\nSession (")
			assertInert(t, report+errs)
			if !strings.Contains(out, `\x1b[2J\x1b]0;pwned\x07`) {
				t.Errorf("the escaped text should still be visible:\n%s", out)
			}
			if name == "connect" && !strings.Contains(out, `leaf\x1b[2J`) {
				t.Errorf("certificate subject not shown escaped:\n%s", out)
			}
		})
	}
}

// A refusal's reply text is part of the one-line error.
func TestTerminalSafeErrors(t *testing.T) {
	addr := fakeLine(t, []string{"220 hi" + evil, "250-hi\r\n250 STARTTLS", "454 4.7.0 no" + evil + "\nVerification OK"})
	code, out, errs := runCLI(t, "", "connect", "smtp://"+addr)
	if code == 0 {
		t.Fatal("a refusal exited 0")
	}
	assertInert(t, out+errs)
	if n := strings.Count(strings.TrimSpace(errs), "\n"); n > 0 {
		t.Errorf("a newline from the peer split the error: %q", errs)
	}
}

func assertInert(t *testing.T, s string) {
	t.Helper()
	for _, bad := range []string{"\x1b", "\x07", "\x9b", "\u202e", "\xff", "\r"} {
		if strings.Contains(s, bad) {
			t.Errorf("output holds %q:\n%q", bad, s)
		}
	}
}

func TestTermSafe(t *testing.T) {
	cases := map[string]string{
		"plain text":         "plain text",
		"a\x1b[2Jb":          `a\x1b[2Jb`,
		"cr\rinside":         `cr\rinside`,
		"two\nlines":         `two\nlines`,
		"del\x7f":            `del\x7f`,
		"c1 \u009b":          `c1 \u009b`,
		"bad \xff\xfe":       `bad \xff\xfe`,
		"rtl \u202eabc":      `rtl \u202eabc`,
		"ünïcode ok, 日本":     "ünïcode ok, 日本",
		"tab\there":          `tab\there`,
		"\u2028sep":          `\u2028sep`,
		"bell\x07":           `bell\x07`,
		"backslash \\x1b ok": "backslash \\x1b ok",
	}
	for in, want := range cases {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// The relay on a terminal keeps line structure and escapes the rest, even
// when a CRLF or a UTF-8 sequence is cut between two reads.
func TestTermWriter(t *testing.T) {
	in := "250 ok\r\n" + evil + "tab\tok\r\nbare\rcr é\u202e\xff end\r"
	want := "250 ok\r\n" + `\x1b[2J\x1b]0;pwned\x07` + "tab\tok\r\nbare" + `\r` + `cr é\u202e\xff end\r`
	for cut := 0; cut <= len(in); cut++ {
		var b bytes.Buffer
		tw := &termWriter{w: &b}
		for _, part := range []string{in[:cut], in[cut:]} {
			if n, err := tw.Write([]byte(part)); err != nil || n != len(part) {
				t.Fatalf("Write: %d, %v", n, err)
			}
		}
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		if b.String() != want {
			t.Fatalf("cut at %d: got %q, want %q", cut, b.String(), want)
		}
	}
}

// Colored output keeps its own escapes and still escapes the peer's,
// including a peer's copy of a reset sequence.
func TestPrinterColorKeepsOnlyOwnEscapes(t *testing.T) {
	var b bytes.Buffer
	p := &printer{w: &b, color: true, ours: map[string]struct{}{}}
	ok := p.green("OK")
	p.line("%s %s %s", ok, "peer"+evil+"\x1b[0m", []string{"a" + evil})
	got := b.String()
	if !strings.HasPrefix(got, "\x1b[32mOK\x1b[0m ") {
		t.Errorf("own color lost: %q", got)
	}
	if strings.Count(got, "\x1b") != 2 {
		t.Errorf("peer escapes passed: %q", got)
	}
}

func TestJSONTermSafe(t *testing.T) {
	var b bytes.Buffer
	if err := writeJSON(&b, map[string]string{"s": "a\x1b\x7f\u009b\u202e\xffb"}); err != nil {
		t.Fatal(err)
	}
	assertInert(t, b.String())
	if strings.Contains(b.String(), "\x7f") || !strings.Contains(b.String(), `\u007f`) {
		t.Errorf("DEL not escaped: %q", b.String())
	}
}

// TestCLIProcess is not a test: run under STARTTLS_TEST_CLI=1 it is the
// command line, arguments after "--", so that a test can run the CLI in a
// child process with a terminal as its stdout.
func TestCLIProcess(t *testing.T) {
	if os.Getenv("STARTTLS_TEST_CLI") != "1" {
		t.Skip("helper process only: the terminal tests run it with STARTTLS_TEST_CLI=1")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	os.Exit(run(args))
}

// On a real terminal (a pty from util-linux script) the interactive
// session escapes the server's bytes too; without the terminal it would
// pass them raw.
func TestTerminalSafeSessionOnTTY(t *testing.T) {
	scriptBin := peer.Require(t, "script")["script"] // util-linux: fatal under CI, a skip with the reason elsewhere
	pki := evilPKI(t)
	addr := libServer(t, starttls.SMTP, starttls.ServerConfig{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.leaf}},
	}, evilSMTP)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	session := func(extra ...string) string {
		args := append([]string{self, "-test.run=^TestCLIProcess$", "--", "connect", "--timeout", "5s", "--ca", pki.caFile}, extra...)
		cmd := exec.CommandContext(ctx, scriptBin, "-qec", strings.Join(append(args, "smtp://"+addr), " "), "/dev/null")
		cmd.Env = append(os.Environ(), "STARTTLS_TEST_CLI=1", "NO_COLOR=1")
		cmd.Stdin = strings.NewReader("NOOP\n\x04")
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("timed out: %q", out)
		}
		if !strings.Contains(string(out), "221 2.0.0 Bye") {
			t.Skipf("no session through the pty (%v): %q", err, out)
		}
		return string(out)
	}
	out := session()
	if strings.ContainsAny(out, "\x1b\x07") {
		t.Errorf("raw escapes reached the terminal: %q", out)
	}
	if !strings.Contains(out, `Bye \x1b[2J`) {
		t.Errorf("the session's reply is not shown escaped: %q", out)
	}
	// The control: --raw on the same pty lets them through, so the pty
	// was taken for a terminal.
	if out := session("--raw"); !strings.Contains(out, "Bye "+evil) {
		t.Errorf("--raw did not relay raw: %q", out)
	}
}
