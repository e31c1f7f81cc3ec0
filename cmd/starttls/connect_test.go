package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/starttls-go/starttls"
)

// runCLI runs the command line in-process and returns exit code, stdout
// and stderr.
func runCLI(t *testing.T, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	rootCmd.SetIn(strings.NewReader(stdin))
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errb)
	oldStderr := os.Stderr
	r, w, _ := os.Pipe()
	os.Stderr = w
	code := run(args)
	w.Close()
	os.Stderr = oldStderr
	var se bytes.Buffer
	_, _ = se.ReadFrom(r)
	resetFlags()
	return code, out.String(), se.String() + errb.String()
}

// resetFlags puts every subcommand's flags back to their defaults: they
// keep their values between in-process runs. A repeatable flag is emptied,
// as Set would append its printed default "[]" to it.
func resetFlags() {
	for _, c := range rootCmd.Commands() {
		resetCommandFlags(c)
	}
}

// resetCommandFlags puts c's own flags back to their defaults.
func resetCommandFlags(c *cobra.Command) {
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			_ = sv.Replace(nil)
		} else {
			_ = f.Value.Set(f.DefValue)
		}
		f.Changed = false
	})
}

// smtpFake serves the STARTTLS dialogue with the library and answers the
// post-TLS EHLO, NOOP and QUIT like a mail server would (smtpApp).
func smtpFake(t *testing.T, cfg starttls.ServerConfig) (addr, caFile string) {
	t.Helper()
	pki := newTestPKI(t, nil)
	cfg.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pki.leaf}}
	return libServer(t, starttls.SMTP, cfg, smtpApp), pki.caFile
}

func TestConnectRelayAndQuit(t *testing.T) {
	addr, ca := smtpFake(t, starttls.ServerConfig{})
	code, out, errs := runCLI(t, "NOOP\n", "connect", "--ca", ca, "smtp://"+addr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	for _, want := range []string{"C: STARTTLS", "TLS 1.3", "OK:", "250 2.0.0 OK NOOP", "221 2.0.0 Bye"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s\nstderr: %s", want, out, errs)
		}
	}
}

func TestConnectJSON(t *testing.T) {
	addr, ca := smtpFake(t, starttls.ServerConfig{})
	code, out, errs := runCLI(t, "", "connect", "--json", "--ca", ca, "smtp://"+addr)
	if code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errs)
	}
	var r ConnectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	if r.Status != starttls.StatusSuccess || r.TLS == nil || !r.Verification.OK || len(r.Certificates) != 2 {
		t.Errorf("unexpected report: %+v", r)
	}
	if !starttls.Capabilities(r.CapabilitiesAfter).Has("AUTH") || starttls.Capabilities(r.CapabilitiesBefore).Has("AUTH") {
		t.Errorf("capabilities before %q after %q", r.CapabilitiesBefore, r.CapabilitiesAfter)
	}
}

func TestConnectFailures(t *testing.T) {
	addr, ca := smtpFake(t, starttls.ServerConfig{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"untrusted", []string{"connect", "smtp://" + addr}, exitFindings, "certificate"},
		{"wrong name", []string{"connect", "--ca", ca, "--servername", "other.test", "smtp://" + addr}, exitFindings, "certificate"},
		{"connection refused", []string{"connect", "--ca", ca, "smtp://" + closed}, exitConnect, "connection refused"},
		{"bad url", []string{"connect", "nosuch://" + addr}, exitUsage, "unknown protocol"},
		{"no protocol", []string{"connect", addr}, exitUsage, "no protocol"},
		{"bad min-tls", []string{"connect", "--min-tls", "2", "smtp://" + addr}, exitUsage, "min-tls"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := runCLI(t, "", tc.args...)
			if code != tc.code || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d (want %d), stderr %q (want %q)", code, tc.code, errs, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errs), "\n"); n > 0 {
				t.Errorf("error is not one line: %q", errs)
			}
		})
	}
}

func TestConnectInsecureStillReports(t *testing.T) {
	addr, _ := smtpFake(t, starttls.ServerConfig{})
	code, out, errs := runCLI(t, "", "connect", "--insecure", "--json", "smtp://"+addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var r ConnectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Verification == nil || r.Verification.OK || r.Verification.Trusted || !strings.Contains(r.Verification.Error, "unknown authority") {
		t.Errorf("verification should report an unknown authority: %+v", r.Verification)
	}
}

func TestConnectNotOffered(t *testing.T) {
	// A plain listener that never offers STARTTLS: the stripping case.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = c.Write([]byte("220 strip ESMTP\r\n"))
		buf := make([]byte, 512)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("250-strip\r\n250 AUTH PLAIN\r\n"))
		_, _ = c.Read(buf)
	}()
	code, _, errs := runCLI(t, "", "connect", "smtp://"+l.Addr().String())
	if code != exitFindings || !strings.Contains(errs, "not offered") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}
