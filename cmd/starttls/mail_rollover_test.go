package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/mail"
	"github.com/starttls-go/starttls/mail/mailtest"
)

// TestMailRollover runs `starttls mail --next-cert/--next-key` against
// the DNSSEC world of mailtest.
func TestMailRollover(t *testing.T) {
	e := mailtest.Start(t)
	base := []string{"mail", "--resolver", e.Resolver, "--smtp-port", strconv.Itoa(e.SMTPPort), "--timeout", "5s"}
	cli := func(args ...string) (int, string, string) {
		t.Helper()
		return runCLI(t, "", append(slices.Clone(base), args...)...)
	}
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fresh, err := e.CA.Issue(certs.LeafOptions{Hosts: []string{"mx1.good.mail.test", "mx2.good.mail.test"}})
	if err != nil {
		t.Fatal(err)
	}
	freshFile := write("fresh.pem", fresh.ChainPEM)
	next, err := mail.ParseNextCert(fresh.ChainPEM)
	if err != nil {
		t.Fatal(err)
	}
	newTLSA := next.TLSA311().String()
	oldTLSA := strings.ToLower(e.TLSA3)

	t.Run("new key: publish first", func(t *testing.T) {
		code, out, errs := cli("--next-cert", freshFile, "good.mail.test")
		if code != exitFindings || !strings.Contains(errs, "does not match the published TLSA records yet") {
			t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
		}
		for _, want := range []string{
			"good.mail.test  DANE rollover not ready",
			"verdict         publish-first",
			oldTLSA + "  now yes, next no",
			`1. publish "` + newTLSA + `" now, next to the current records`,
			`then remove "` + oldTLSA + `"`,
			// mx2 has 2 0 1 of the CA that issues the next certificate too.
			"verdict         ready",
			e.TLSA2 + "  now yes, next yes",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("same key: ready", func(t *testing.T) {
		code, out, errs := cli("--next-key", write("key.pem", e.MXLeaf.KeyPEM), "nosts.mail.test")
		if code != exitOK || !strings.Contains(out, "nosts.mail.test  DANE rollover ready") || !strings.Contains(out, oldTLSA+"  now yes, next yes") {
			t.Errorf("exit %d, stderr %q\n%s", code, errs, out)
		}
	})

	t.Run("json", func(t *testing.T) {
		code, out, _ := cli("--json", "--next-cert", freshFile, "nosts.mail.test")
		var r mail.RolloverReport
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, out)
		}
		if code != exitFindings || r.Ready || len(r.Hosts) != 1 || r.Hosts[0].Plan == nil || !slices.Equal(r.Hosts[0].Plan.Publish, []string{newTLSA}) {
			t.Errorf("exit %d: %s", code, out)
		}
	})

	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{
			{"--next-cert", freshFile, "--next-key", freshFile, "good.mail.test"},
			{"--next-cert", filepath.Join(dir, "missing.pem"), "good.mail.test"},
			{"--next-cert", write("key-only.pem", fresh.KeyPEM), "good.mail.test"},
		} {
			if code, _, errs := cli(args...); code != exitUsage {
				t.Errorf("%v: exit %d: %s", args, code, errs)
			}
		}
	})

	if code, _, errs := cli("--next-cert", freshFile, "nonexistent.mail.test"); code != exitConnect {
		t.Errorf("NXDOMAIN: exit %d: %s", code, errs)
	}
}
