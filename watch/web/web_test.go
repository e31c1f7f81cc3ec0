package web

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/watch/store"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, _ := io.ReadAll(rec.Body)
	return rec.Code, string(b)
}

func server(t *testing.T) http.Handler {
	st := fixture(t)
	return (&Server{Store: st, Now: func() time.Time { return fixNow },
		Metrics: func() []Metric {
			return []Metric{{Name: "watch_results_dropped_total", Help: "results dropped", Value: 7}}
		}}).Handler()
}

func TestIndex(t *testing.T) {
	h := server(t)
	code, body := get(t, h, "/")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	if n := strings.Count(body, `<tr class="subject"`); n != 3 {
		t.Fatalf("%d subject rows, want 3", n)
	}
	for _, want := range []string{"smtp://127.0.0.1:2525", "mail.test", `class="grade g-a">A+</td>`, `class="exp-warn">10</td>`, `class="">80</td>`, "results dropped", "<b>7</b>"} {
		if !strings.Contains(body, want) {
			t.Errorf("index lacks %q in %s", want, body[strings.Index(body, "<tbody>\n<tr class=\"subject\""):])
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<img") {
		t.Fatalf("hostile text unescaped on the index")
	}
}

func TestSubjectPages(t *testing.T) {
	h := server(t)
	code, body := get(t, h, "/subject?s="+url.QueryEscape("target:smtp://127.0.0.1:2525"))
	if code != 200 {
		t.Fatalf("status %d: %s", code, body)
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "<img") {
		t.Fatalf("hostile text unescaped on the target page")
	}
	for _, want := range []string{`id="grade-plot"`, `id="finding-plot"`, "&lt;script&gt;document.title=&#34;pwned&#34;&lt;/script&gt;", "grade dropped from A to C", "<polyline"} {
		if !strings.Contains(body, want) {
			t.Errorf("target page lacks %q", want)
		}
	}
	code, body = get(t, h, "/subject?s="+url.QueryEscape("domain:mail.test"))
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{"mx1.mail.test", `id="sts-mode">testing`, "mailto:tlsrpt@mail.test", `id="tlsrpt-reports">2</td>`, `id="tlsrpt-failed">3</td>`, "1.48%", "<th>certificate-expired</th><td>3 sessions (mx1.mail.test)"} {
		if !strings.Contains(body, want) {
			t.Errorf("domain page lacks %q", want)
		}
	}
	if code, _ := get(t, h, "/subject?s=target:nope"); code != 404 {
		t.Fatalf("unknown subject: %d", code)
	}
	code, body = get(t, h, "/report.json?s="+url.QueryEscape("target:smtp://127.0.0.2:25"))
	if code != 200 || !strings.Contains(body, `"schema":"starttls.report/v1"`) {
		t.Fatalf("report.json %d %.100s", code, body)
	}
	_, body = get(t, h, "/metrics")
	if !strings.Contains(body, "# TYPE watch_results_dropped_total counter\nwatch_results_dropped_total 7\n") {
		t.Fatalf("metrics: %s", body)
	}
}

// The hand-written row renderer escapes like html/template: text, quoted
// attributes and links.
func TestSubjectRowsEscape(t *testing.T) {
	h := `"><script>alert(1)</script>` + hostile
	out := string(subjectRows(fixNow, []store.SubjectRow{{Subject: "target:" + h, Kind: "target", Name: h, Status: h, Grade: h,
		Worst: h, LastChange: h, LastChangeAt: fixNow, LastRun: fixNow, Fails: 2}}))
	if strings.Contains(out, "<script") || strings.Contains(out, "<img") || strings.Count(out, "<td") != 8 || strings.Count(out, "\"") != 14 {
		t.Fatalf("unescaped: %s", out)
	}
	if !strings.Contains(out, "&#34;&gt;&lt;script&gt;") || !strings.Contains(out, `href="/subject?s=target%3A%22%3E%3Cscript%3E`) || !strings.Contains(out, "(2x)") {
		t.Fatalf("escaped form: %s", out)
	}
	if got := string(subjectRows(fixNow, nil)); !strings.Contains(got, "nothing checked yet") {
		t.Fatalf("empty: %s", got)
	}
}

// Without the collector's tables there is no summary and no error.
func TestTLSRPTAbsent(t *testing.T) {
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sum, err := tlsrptSummary(context.Background(), st.DB(), "sqlite", "mail.test", fixNow)
	if sum != nil || err != nil {
		t.Fatalf("%+v %v", sum, err)
	}
}
