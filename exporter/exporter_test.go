package exporter

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/serve"
)

// smtpServer starts the serve package's SMTP server with a throwaway CA
// and returns its address and the CA file.
func smtpServer(t *testing.T, maxVersion uint16) (addr, caFile string) {
	t.Helper()
	cfg, caFile, err := serve.ThrowawayTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.MaxVersion = maxVersion
	s, err := serve.Start(context.Background(), serve.Options{Protocol: starttls.SMTP, TLSConfig: cfg, Policy: starttls.Required, IdleTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s.Addr.String(), caFile
}

// stalled accepts connections and never speaks.
func stalled(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	return l.Addr().String()
}

func newExporter(t *testing.T, yml string, o Options) *httptest.Server {
	t.Helper()
	if yml != "" {
		c, err := ParseConfig([]byte(yml))
		if err != nil {
			t.Fatal(err)
		}
		o.Config = c
	}
	e, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(e.Handler())
	t.Cleanup(srv.Close)
	return srv
}

// scrape GETs path with the scrape-timeout header (none when empty) and
// returns the status, the parsed families (for 200) and the body.
func scrape(t *testing.T, base, path, timeout string) (int, map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, err := http.NewRequest("GET", base+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if timeout != "" {
		req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", timeout)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		return resp.StatusCode, nil, string(body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("not the Prometheus text format: %v\n%s", err, body)
	}
	return resp.StatusCode, fams, string(body)
}

func probePath(target, module string) string {
	v := url.Values{}
	if target != "" {
		v.Set("target", target)
	}
	if module != "" {
		v.Set("module", module)
	}
	return "/probe?" + v.Encode()
}

// value returns the gauge of family name whose labels include want, and
// whether there is one.
func value(fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, v := range want {
			if have[k] != v {
				continue next
			}
		}
		return m.GetGauge().GetValue(), true
	}
	return 0, false
}

func mustValue(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels map[string]string, want float64) {
	t.Helper()
	got, ok := value(fams, name, labels)
	if !ok {
		t.Errorf("no %s%v", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// A correct server checked fully with its CA trusted: success, A+, no
// finding above info (Go's TLS 1.2 defaults include CBC suites, which
// lucky13 notes as info, as testssl does), TLS 1.3, a certificate about a
// year from expiry.
func TestProbeGoodServer(t *testing.T) {
	addr, ca := smtpServer(t, 0)
	srv := newExporter(t, fmt.Sprintf("modules:\n  good:\n    depth: full\n    timeout: 5s\n    ca_file: %s\n    servername: localhost\n    fail_on: medium\n", ca), Options{})
	code, fams, body := scrape(t, srv.URL, probePath("smtp://"+addr, "good"), "30")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	mustValue(t, fams, "starttls_probe_success", nil, 1)
	mustValue(t, fams, "starttls_upgrade_success", nil, 1)
	mustValue(t, fams, "starttls_grade", nil, 5)
	mustValue(t, fams, "starttls_grade_info", map[string]string{"grade": "A+"}, 1)
	mustValue(t, fams, "starttls_probe_status", map[string]string{"status": "success"}, 1)
	mustValue(t, fams, "starttls_tls_version_info", map[string]string{"version": "TLS 1.3"}, 1)
	mustValue(t, fams, "starttls_cert_verified", nil, 1)
	for _, s := range []string{"low", "medium", "high", "critical"} {
		mustValue(t, fams, "starttls_findings", map[string]string{"severity": s}, 0)
	}
	if f := fams["starttls_finding"]; f != nil {
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "severity" && l.GetValue() != "info" {
					t.Errorf("a %s finding on a correct server:\n%s", l.GetValue(), body)
				}
			}
		}
	}
	days, _ := value(fams, "starttls_cert_days_left", nil)
	notAfter, _ := value(fams, "starttls_cert_not_after", nil)
	if days < 360 || days > 366 {
		t.Errorf("days left %v, want about a year", days)
	}
	if d := time.Until(time.Unix(int64(notAfter), 0)).Hours() / 24; d-days > 0.01 || days-d > 0.01 {
		t.Errorf("not_after %v is %v days away, days_left says %v", notAfter, d, days)
	}
	total, _ := value(fams, "starttls_probe_duration_seconds", map[string]string{"phase": "total"})
	hs, ok := value(fams, "starttls_probe_duration_seconds", map[string]string{"phase": "handshake"})
	if !ok || total <= 0 || hs <= 0 || hs > total {
		t.Errorf("durations: handshake %v (present %v), total %v", hs, ok, total)
	}

	// The exporter's own metrics count the probe.
	code, own, body := scrape(t, srv.URL, "/metrics", "")
	if code != 200 {
		t.Fatalf("/metrics %d: %s", code, body)
	}
	if c := own["starttls_exporter_probes_total"]; c == nil || c.GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Errorf("probes_total: %v", c)
	}
	if h := own["starttls_exporter_probe_duration_seconds"]; h == nil || h.GetMetric()[0].GetHistogram().GetSampleCount() != 1 {
		t.Errorf("duration histogram: %v", h)
	}
	if own["go_goroutines"] == nil || own["process_start_time_seconds"] == nil {
		t.Errorf("no Go/process collectors in /metrics")
	}
}

// A server with an untrusted certificate that stops at TLS 1.2: the
// findings are metrics, the grade drops, and with fail_on high the probe
// fails while the upgrade itself succeeded.
func TestProbeBadServer(t *testing.T) {
	addr, _ := smtpServer(t, tls.VersionTLS12)
	srv := newExporter(t, "modules:\n  strict:\n    depth: quick\n    timeout: 5s\n    fail_on: high\n  lax:\n    depth: quick\n", Options{})
	code, fams, body := scrape(t, srv.URL, probePath("smtp://"+addr, "strict"), "")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	mustValue(t, fams, "starttls_upgrade_success", nil, 1)
	mustValue(t, fams, "starttls_probe_success", nil, 0)
	mustValue(t, fams, "starttls_finding", map[string]string{"id": "cert-untrusted", "severity": "high"}, 1)
	mustValue(t, fams, "starttls_tls_version_info", map[string]string{"version": "TLS 1.2"}, 1)
	mustValue(t, fams, "starttls_cert_verified", nil, 0)
	if g, _ := value(fams, "starttls_grade", nil); g > 2 {
		t.Errorf("grade %v for an untrusted certificate", g)
	}
	if n, _ := value(fams, "starttls_findings", map[string]string{"severity": "high"}); n < 1 {
		t.Errorf("high findings counted %v", n)
	}
	// Without fail_on, findings do not fail the probe.
	_, fams, _ = scrape(t, srv.URL, probePath("smtp://"+addr, "lax"), "")
	mustValue(t, fams, "starttls_probe_success", nil, 1)
	mustValue(t, fams, "starttls_finding", map[string]string{"id": "cert-untrusted", "severity": "high"}, 1)
}

// Nothing listens: the probe answers 200 with success 0 and the status.
func TestProbeUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	srv := newExporter(t, "", Options{})
	code, fams, body := scrape(t, srv.URL, probePath("smtp://"+addr, ""), "5")
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	mustValue(t, fams, "starttls_probe_success", nil, 0)
	mustValue(t, fams, "starttls_upgrade_success", nil, 0)
	mustValue(t, fams, "starttls_probe_status", map[string]string{"status": "connect-refused"}, 1)
	if _, ok := value(fams, "starttls_cert_days_left", nil); ok {
		t.Errorf("certificate metrics without a certificate")
	}
}

func TestProbeBadRequests(t *testing.T) {
	srv := newExporter(t, "modules:\n  a: {}\n  b: {depth: full}\n", Options{})
	cases := []struct{ name, path, want string }{
		{"unknown module", probePath("smtp://127.0.0.1:1", "nosuch"), "unknown module"},
		{"missing target", probePath("", "a"), "target"},
		{"missing module", probePath("smtp://127.0.0.1:1", ""), "module parameter"},
		{"bad target", probePath("gopher://127.0.0.1:1", "a"), "gopher"},
		{"no protocol", probePath("127.0.0.1:25", "a"), "protocol"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := scrape(t, srv.URL, tc.path, "")
			if code != http.StatusBadRequest || !strings.Contains(body, tc.want) {
				t.Errorf("status %d body %q, want 400 naming %q", code, body, tc.want)
			}
		})
	}
	code, _, body := scrape(t, srv.URL, probePath("smtp://127.0.0.1:1", "a"), "soon")
	if code != http.StatusBadRequest {
		t.Errorf("bad scrape-timeout header: %d %s", code, body)
	}
	// A module's protocol lets a target leave out the scheme.
	srv = newExporter(t, "modules:\n  mx:\n    protocol: smtp\n", Options{DefaultModule: "mx"})
	code, fams, body := scrape(t, srv.URL, probePath("127.0.0.1:1", ""), "3")
	if code != 200 {
		t.Fatalf("host:port with a module protocol: %d %s", code, body)
	}
	mustValue(t, fams, "starttls_probe_status", map[string]string{"status": "connect-refused"}, 1)
}

// The probe ends within the scrape timeout less the offset, even when
// the module's phase timeout is far longer.
func TestProbeScrapeTimeout(t *testing.T) {
	addr := stalled(t)
	srv := newExporter(t, "modules:\n  slow:\n    timeout: 60s\n", Options{DefaultModule: "slow", TimeoutOffset: 500 * time.Millisecond})
	start := time.Now()
	code, fams, body := scrape(t, srv.URL, probePath("smtp://"+addr, ""), "1.5")
	d := time.Since(start)
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	mustValue(t, fams, "starttls_probe_success", nil, 0)
	if d < 900*time.Millisecond || d > 3*time.Second {
		t.Errorf("probe took %v, want about 1s (1.5s scrape timeout less 0.5s)", d)
	}
	total, _ := value(fams, "starttls_probe_duration_seconds", map[string]string{"phase": "total"})
	if total > 1.5 {
		t.Errorf("total %vs", total)
	}
}

// With every slot taken, a probe that cannot start before its deadline
// is answered 503 instead of queueing past the scrape.
func TestProbeConcurrencyCap(t *testing.T) {
	addr := stalled(t)
	srv := newExporter(t, "", Options{MaxConcurrent: 1})
	done := make(chan int, 1)
	go func() {
		code, _, _ := scrape(t, srv.URL, probePath("smtp://"+addr, ""), "3")
		done <- code
	}()
	// Wait (bounded) until the first probe holds the slot.
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, own, _ := scrape(t, srv.URL, "/metrics", "")
		if g := own["starttls_exporter_probes_in_flight"]; g != nil && g.GetMetric()[0].GetGauge().GetValue() == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first probe never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, _, body := scrape(t, srv.URL, probePath("smtp://"+addr, ""), "1")
	if code != http.StatusServiceUnavailable {
		t.Errorf("second probe: %d %s, want 503", code, body)
	}
	if c := <-done; c != 200 {
		t.Errorf("first probe: %d", c)
	}
	// The slot is free again.
	code, _, body = scrape(t, srv.URL, probePath("smtp://"+addr, ""), "1")
	if code != 200 {
		t.Errorf("third probe: %d %s", code, body)
	}
}

func TestProbeAllowList(t *testing.T) {
	addr, ca := smtpServer(t, 0)
	_, port, _ := net.SplitHostPort(addr)
	yml := fmt.Sprintf("modules:\n  quick:\n    ca_file: %s\n    servername: localhost\n", ca)
	cases := []struct {
		allow  []string
		target string
		want   int
	}{
		{[]string{"10.0.0.0/8"}, "smtp://" + addr, http.StatusForbidden},
		{[]string{"*.example.org"}, "smtp://" + addr, http.StatusForbidden},
		{[]string{"mx.example.org"}, "smtp://localhost:" + port, http.StatusForbidden},
		{[]string{"127.0.0.0/8"}, "smtp://" + addr, http.StatusOK},
		{[]string{"127.0.0.1"}, "smtp://localhost:" + port, http.StatusOK},
		{[]string{"10.0.0.0/8", "localhost"}, "smtp://localhost:" + port, http.StatusOK},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.allow, ",")+" "+tc.target, func(t *testing.T) {
			allow, err := ParseAllowList(tc.allow)
			if err != nil {
				t.Fatal(err)
			}
			srv := newExporter(t, yml, Options{Allow: allow})
			code, fams, body := scrape(t, srv.URL, probePath(tc.target, ""), "10")
			if code != tc.want {
				t.Fatalf("status %d, want %d: %s", code, tc.want, body)
			}
			if code == http.StatusForbidden && !strings.Contains(body, "not allowed") {
				t.Errorf("refusal does not say why: %q", body)
			}
			if code == http.StatusOK {
				mustValue(t, fams, "starttls_probe_success", nil, 1)
			}
		})
	}
}

func TestConfig(t *testing.T) {
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := []struct{ yml, want string }{
		{"modules:\n  a:\n    depht: full\n", "depht"},
		{"modules:\n  a:\n    depth: deep\n", "depth"},
		{"modules:\n  a:\n    fail_on: severe\n", "fail_on"},
		{"modules:\n  a:\n    protocol: gopher\n", "protocol"},
		{"modules:\n  a:\n    timeout: soon\n", "soon"},
		{"modules:\n  a:\n    ca_file: " + ca + "\n", "no PEM"},
		{"modules: {}\n", "no modules"},
	}
	for _, tc := range bad {
		if _, err := ParseConfig([]byte(tc.yml)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one naming %q", tc.yml, err, tc.want)
		}
	}
	c, err := ParseConfig([]byte("modules:\n  a:\n    depth: session\n    timeout: 3s\n  b: {}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if m := c.Modules["a"]; m.Depth != "session" || m.Timeout != 3*time.Second {
		t.Errorf("a: %+v", m)
	}
	if m := c.Modules["b"]; m.Depth != "quick" || m.Timeout != 10*time.Second {
		t.Errorf("b defaults: %+v", m)
	}
	if _, err := New(Options{Config: c, DefaultModule: "c"}); err == nil {
		t.Errorf("an unconfigured default module was accepted")
	}
}

func TestAllowListPatterns(t *testing.T) {
	if _, err := ParseAllowList([]string{"mx.*.org"}); err == nil {
		t.Error("inner wildcard accepted")
	}
	if _, err := ParseAllowList([]string{"10.0.0.0/33"}); err == nil {
		t.Error("bad prefix accepted")
	}
	a, err := ParseAllowList([]string{"192.0.2.0/24", "*.example.org", "MX.Example.NET.", "2001:db8::1"})
	if err != nil {
		t.Fatal(err)
	}
	a.lookup = func(ctx context.Context, host string) ([]netipAddr, error) { return fakeDNS[host], nil }
	cases := map[string]bool{
		"192.0.2.7": true, "192.0.3.1": false, "mx.example.org": true, "example.org": false,
		"mx.example.net": true, "mx.example.net.": true, "2001:db8::1": true, "2001:db8::2": false,
		"inside.test": true, "straddle.test": false, "nowhere.test": false,
	}
	for host, want := range cases {
		err := a.Check(context.Background(), host)
		if (err == nil) != want {
			t.Errorf("%s: %v, want allowed=%v", host, err, want)
		}
	}
	var nilList *AllowList
	if err := nilList.Check(context.Background(), "anything.example"); err != nil {
		t.Errorf("no list refused: %v", err)
	}
}
