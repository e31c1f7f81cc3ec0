package web

import (
	"context"
	"flag"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/starttls-go/starttls/internal/peer"
)

var screenshots = flag.Bool("screenshots", false, "write the browser test's screenshots to docs/img/watch-*.png")

// browser starts Debian's chromium headless with a fresh profile; a
// missing chromium skips outside CI and fails under CI=true.
func browser(t *testing.T) context.Context {
	t.Helper()
	bin := peer.Require(t, "chromium")["chromium"]
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(bin),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 900),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx)
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelB(); cancelA() })
	return ctx
}

// run runs one action and fails the test on error.
func run[T any](t *testing.T, ctx context.Context, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// count is the number of elements a CSS selector matches.
func count(t *testing.T, ctx context.Context, sel string) int {
	t.Helper()
	return run(t, ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+strconvQuote(sel)+`).length`))
}

func strconvQuote(s string) string { return strconv.Quote(s) }

func open(t *testing.T, ctx context.Context, u, waitFor string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(waitFor))); err != nil {
		t.Fatal(err)
	}
}

func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png := run(t, ctx, chromedp.FullScreenshot(100))
	if len(png) < 1000 || string(png[1:4]) != "PNG" {
		t.Fatalf("screenshot %s: %d bytes, not a PNG", name, len(png))
	}
	dir := t.TempDir()
	if *screenshots {
		dir = filepath.Join("..", "..", "docs", "img")
	}
	if err := os.WriteFile(filepath.Join(dir, "watch-"+name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The dashboard in a real browser: the pages load without JavaScript of
// their own, the tables have their rows, a hostile greeting and
// certificate subject appear as text and run nothing, and the timeline
// SVGs are drawn.
func TestBrowser(t *testing.T) {
	ctx := browser(t)
	srv := httptest.NewServer((&Server{Store: fixture(t), Now: func() time.Time { return fixNow },
		Metrics: func() []Metric {
			return []Metric{{Name: "watch_results_dropped_total", Help: "results dropped", Value: 0}}
		}}).Handler())
	defer srv.Close()

	open(t, ctx, srv.URL+"/", "#subjects")
	title := run(t, ctx, chromedp.Title())
	rows := count(t, ctx, "#subjects tbody tr.subject")
	gradeCells := count(t, ctx, "#subjects td.grade")
	third := run(t, ctx, chromedp.Text(chromedp.CSS("#subjects tbody tr.subject:nth-child(3) td.grade")))
	if rows != 3 || gradeCells != 3 || third != "A+" || title != "dashboard - starttls watch" {
		t.Fatalf("index: %d rows, %d grade cells, third grade %q, title %q", rows, gradeCells, third, title)
	}
	shot(t, ctx, "index")

	open(t, ctx, srv.URL+"/subject?s="+url.QueryEscape("target:smtp://127.0.0.1:2525"), "#grade-plot")
	title = run(t, ctx, chromedp.Title())
	greeting := run(t, ctx, chromedp.Text(chromedp.CSS("#greeting")))
	subject := run(t, ctx, chromedp.Text(chromedp.CSS("td.cert-subject")))
	marks := count(t, ctx, "svg#grade-plot polyline, svg#finding-plot rect")
	svgs := count(t, ctx, "svg")
	injected := count(t, ctx, "script, img")
	if title == "pwned" || injected != 0 {
		t.Fatalf("hostile markup became elements: title %q, %d script/img elements", title, injected)
	}
	if !strings.Contains(greeting, hostile) || !strings.Contains(subject, hostile) {
		t.Fatalf("hostile text not shown as text: greeting %q subject %q", greeting, subject)
	}
	if svgs != 2 || marks < 2 {
		t.Fatalf("%d svg elements, %d plot marks", svgs, marks)
	}
	shot(t, ctx, "target")

	open(t, ctx, srv.URL+"/subject?s="+url.QueryEscape("domain:mail.test"), "#mx")
	mx := count(t, ctx, "#mx tr.mx")
	mode := run(t, ctx, chromedp.Text(chromedp.CSS("#sts-mode")))
	reports := run(t, ctx, chromedp.Text(chromedp.CSS("#tlsrpt-reports")))
	if mx != 1 || mode != "testing" || reports != "2" {
		t.Fatalf("domain page: %d MX rows, mode %q, %q TLS-RPT reports", mx, mode, reports)
	}
	shot(t, ctx, "domain")
}
