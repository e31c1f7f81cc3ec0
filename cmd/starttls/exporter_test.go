package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// startExporter runs the exporter command in-process until the test ends
// and returns its base URL.
func startExporter(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb syncBuffer
	rootCmd.SetIn(strings.NewReader(""))
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&errb)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	code := -1
	go func() {
		defer close(done)
		code = runContext(ctx, append([]string{"exporter", "--listen", "127.0.0.1:0"}, args...))
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
			if code != 0 {
				t.Errorf("exporter exited %d: %s", code, errb.String())
			}
		case <-time.After(10 * time.Second):
			t.Error("exporter did not stop")
		}
		resetFlags()
	})
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if rest, ok := strings.CutPrefix(out.String(), "listening on "); ok {
			addr, _, _ := strings.Cut(rest, " ")
			return "http://" + addr
		}
		select {
		case <-done:
			t.Fatalf("exporter exited %d: %s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("exporter did not listen: %s", errb.String())
	return ""
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// The command wires the config file and --allow into the exporter.
func TestExporterCommand(t *testing.T) {
	addr, ca := smtpFake(t, starttls.ServerConfig{})
	cfg := filepath.Join(t.TempDir(), "exporter.yml")
	if err := os.WriteFile(cfg, []byte("modules:\n  mx:\n    depth: quick\n    timeout: 5s\n    ca_file: "+ca+"\n    servername: localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	base := startExporter(t, "--config", cfg, "--allow", "127.0.0.0/8")
	code, body := get(t, base+"/probe?module=mx&target=smtp://"+addr)
	if code != 200 || !strings.Contains(body, "starttls_probe_success 1") || !strings.Contains(body, `starttls_grade_info{grade="A"} 1`) {
		t.Errorf("probe: %d\n%s", code, body)
	}
	if code, body := get(t, base+"/probe?module=quick&target=smtp://"+addr); code != 400 {
		t.Errorf("module quick is not in the file, got %d %s", code, body)
	}
	if code, body := get(t, base+"/probe?module=mx&target=smtp://192.0.2.1:25"); code != 403 {
		t.Errorf("192.0.2.1 is outside --allow, got %d %s", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, `starttls_exporter_probes_total{module="mx",result="success"} 1`) {
		t.Errorf("/metrics: %d\n%s", code, body)
	}
}

func TestExporterCommandUsage(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yml")
	if err := os.WriteFile(bad, []byte("modules:\n  x:\n    depth: deep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"exporter", "--config", bad},
		{"exporter", "--config", filepath.Join(t.TempDir(), "missing.yml")},
		{"exporter", "--allow", "mx.*.org"},
		{"exporter", "--default-module", "nosuch"},
	} {
		if code, _, errs := runCLI(t, "", args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d: %s", args, code, exitUsage, errs)
		}
	}
	code, out, errs := runCLI(t, "", "exporter", "--check-config")
	if code != 0 || !strings.Contains(out, "full quick session") {
		t.Errorf("--check-config: %d %q %s", code, out, errs)
	}
}
