package main

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
)

// startExporter runs the exporter command in-process until the test ends
// and returns its base URL.
func startExporter(t *testing.T, args ...string) string {
	t.Helper()
	addr, _ := startListening(t, append([]string{"exporter", "--listen", "127.0.0.1:0"}, args...)...)
	return "http://" + addr
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
