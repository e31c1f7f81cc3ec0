package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/internal/peer"
)

// fakeLine is a hand-written line server: it sends replies[0] as the
// greeting, then one reply per line the client sends, then reads (and
// ignores) the rest until the client leaves. A nil replies stalls: it
// accepts and never speaks. Each connection gets the same script.
func fakeLine(t *testing.T, replies []string) string {
	t.Helper()
	return loopback.Serve(t, 10*time.Second, func(c net.Conn) {
		br := bufio.NewReader(c)
		for i, r := range replies {
			if i > 0 {
				if _, err := br.ReadString('\n'); err != nil {
					return
				}
			}
			if _, err := c.Write([]byte(r + "\r\n")); err != nil {
				return
			}
		}
		_, _ = br.WriteTo(discard{})
	})
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// The one-line errors of connect name the condition, and every failure
// exits non-zero.
func TestConnectExitConditions(t *testing.T) {
	refused := fakeLine(t, []string{"220 fake ESMTP", "250-fake\r\n250 STARTTLS", "454 4.7.0 TLS not available"})
	injected := fakeLine(t, []string{"220 fake ESMTP", "250-fake\r\n250 STARTTLS", "220 2.0.0 go ahead\r\n250-injected"})
	stalled := fakeLine(t, nil)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"refused", []string{"connect", "smtp://" + refused}, "refused"},
		{"injection", []string{"connect", "smtp://" + injected}, "injection"},
		{"timeout", []string{"connect", "--timeout", "300ms", "smtp://" + stalled}, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := runCLI(t, "", tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, out %s", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q does not name %q", errs, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errs), "\n"); n > 0 {
				t.Errorf("error is not one line: %q", errs)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}

// --min-tls 1.3 refuses a server that stops at TLS 1.2; 1.2 accepts it.
func TestConnectMinTLS(t *testing.T) {
	pki := newTestPKI(t, nil)
	addr := libServer(t, starttls.SMTP, starttls.ServerConfig{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.leaf}, MaxVersion: tls.VersionTLS12},
	}, smtpApp)
	code, out, errs := runCLI(t, "", "connect", "--json", "--ca", pki.caFile, "--min-tls", "1.2", "smtp://"+addr)
	if code != 0 || !strings.Contains(out, `"version": "TLS 1.2"`) {
		t.Fatalf("--min-tls 1.2: exit %d, stderr %s\n%s", code, errs, out)
	}
	code, _, errs = runCLI(t, "", "connect", "--ca", pki.caFile, "--min-tls", "1.3", "smtp://"+addr)
	if code == 0 || !strings.Contains(errs, "handshake") || !strings.Contains(errs, "version") {
		t.Errorf("--min-tls 1.3 against TLS 1.2: exit %d, stderr %q", code, errs)
	}
}

// The exit status contract of check: 0 clean, 1 a finding at --fail-on,
// 2 usage, 3 unreachable.
func TestCheckExitCodes(t *testing.T) {
	clean, ca := smtpFake(t, starttls.ServerConfig{})
	closed := loopback.UnusedAddr(t)
	cases := []struct {
		name string
		args []string
		code int
	}{
		{"clean", []string{"check", "--only", "quick", "--ca", ca, "smtp://" + clean}, exitOK},
		{"untrusted is high", []string{"check", "--only", "quick", "smtp://" + clean}, exitFindings},
		{"untrusted below --fail-on critical", []string{"check", "--only", "quick", "--fail-on", "critical", "smtp://" + clean}, exitOK},
		{"bad --fail-on", []string{"check", "--fail-on", "severe", "smtp://" + clean}, exitUsage},
		{"bad --only", []string{"check", "--only", "some", "smtp://" + clean}, exitUsage},
		{"no target", []string{"check"}, exitUsage},
		{"unknown scheme", []string{"check", "gopher://" + clean}, exitUsage},
		{"unreachable", []string{"check", "--only", "quick", "--timeout", "2s", "smtp://" + closed}, exitConnect},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := runCLI(t, "", tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s\n%s", code, tc.code, errs, out)
			}
		})
	}
}

// check --json prints exactly one report/v1 document per target on
// stdout, and nothing else there.
func TestCheckJSONDocument(t *testing.T) {
	addr, ca := smtpFake(t, starttls.ServerConfig{})
	code, out, errs := runCLI(t, "", "check", "--json", "--only", "quick", "--ca", ca, "smtp://"+addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	dec := json.NewDecoder(strings.NewReader(out))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if doc["schema"] != "starttls.report/v1" || doc["target"] != "smtp://"+addr || doc["protocol"] != "smtp" {
		t.Errorf("schema %v target %v protocol %v", doc["schema"], doc["target"], doc["protocol"])
	}
	for _, k := range []string{"starttls", "tls", "certificate", "findings", "grade", "timings"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("no %q in the document", k)
		}
	}
	if dec.More() {
		t.Errorf("more than one document on stdout:\n%s", out)
	}
}

// startServe runs the serve command in-process until the test ends and
// returns its address and what it printed on stderr by then.
func startServe(t *testing.T, args ...string) (addr, stderr string) {
	t.Helper()
	return startListening(t, append([]string{"serve"}, args...)...)
}

// startListening runs a long-running command in-process until the test
// ends (it must then exit 0) and returns the address of its first
// "listening on ADDR" line on stdout and what it printed on stderr by then.
func startListening(t *testing.T, args ...string) (addr, stderr string) {
	t.Helper()
	var out, errb peer.Buffer
	rootCmd.SetIn(strings.NewReader(""))
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	code := -1
	go func() {
		defer close(done)
		code = runContext(ctx, args)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if code != 0 {
				t.Errorf("%s exited %d: %s", args[0], code, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s did not stop", args[0])
		}
		resetFlags()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rest, ok := strings.CutPrefix(out.String(), "listening on "); ok {
			addr, _, _ = strings.Cut(rest, " ")
			return addr, errb.String()
		}
		select {
		case <-done:
			t.Fatalf("%s exited %d: %s", args[0], code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("%s did not listen: %s", args[0], errb.String())
	return "", ""
}

func poolFromFile(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	pem, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("%s: no certificate", file)
	}
	return pool
}

// dialVerified upgrades with the library, verifying against pool.
func dialVerified(t *testing.T, p starttls.Protocol, addr string, pool *x509.CertPool, serverName, domain string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, p, addr, &starttls.Config{
		TLSConfig: &tls.Config{RootCAs: pool, ServerName: serverName}, PhaseTimeout: 5 * time.Second, Domain: domain,
	})
	if err != nil {
		t.Fatalf("dial %s %s: %v", p, addr, err)
	}
	if err := c.Quit(ctx); err != nil {
		t.Errorf("quit: %v", err)
	}
}

// serve without --cert prints a throwaway CA that verifies its
// certificate for localhost.
func TestServeThrowawayCA(t *testing.T) {
	addr, stderr := startServe(t, "--proto", "smtp")
	caFile, ok := strings.CutPrefix(strings.TrimSpace(stderr), "CA certificate: ")
	if !ok {
		t.Fatalf("no CA path on stderr: %q", stderr)
	}
	dialVerified(t, starttls.SMTP, addr, poolFromFile(t, caFile), "localhost", "")
}

// serve --cert/--key serves that certificate and makes no CA.
func TestServeCertKey(t *testing.T) {
	ca, err := certs.NewCA("serve test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile, err := leaf.WriteFiles(dir, "leaf")
	if err != nil {
		t.Fatal(err)
	}
	addr, stderr := startServe(t, "--proto", "imap", "--cert", certFile, "--key", keyFile)
	if strings.Contains(stderr, "CA certificate") {
		t.Errorf("a CA was made despite --cert: %q", stderr)
	}
	dialVerified(t, starttls.IMAP, addr, ca.Pool(), "localhost", "")

	code, _, errs := runCLI(t, "", "serve", "--proto", "imap", "--cert", certFile, "--key", filepath.Join(dir, "missing.pem"))
	if code != exitUsage || !strings.Contains(errs, "--cert/--key") {
		t.Errorf("missing key: exit %d, %q", code, errs)
	}
}

// smtpApp answers the post-TLS EHLO, NOOP and QUIT; any other command
// gets a 250 that quotes it, so that a test sees which line arrived.
func smtpApp(ctx context.Context, c *starttls.Conn) {
	defer c.Close()
	for i := 0; i < 20; i++ {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		switch strings.ToUpper(strings.Fields(line + " x")[0]) {
		case "EHLO":
			_, _ = c.Write([]byte("250-localhost\r\n250 AUTH PLAIN\r\n"))
		case "QUIT":
			_, _ = c.Write([]byte("221 2.0.0 Bye\r\n"))
			return
		default:
			_, _ = c.Write([]byte("250 2.0.0 OK " + line + "\r\n"))
		}
	}
}
