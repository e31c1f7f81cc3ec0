package scan

import (
	"context"
	"crypto/x509"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/check"
)

type discardCloser struct{}

func (discardCloser) Write(p []byte) (int, error) { return len(p), nil }
func (discardCloser) Close() error                { return nil }

// BenchmarkScanTargets scans the targets listed in $SCAN_BENCH_TARGETS
// (URLs, one a line; $SCAN_BENCH_CA their CA, $SCAN_BENCH_C the
// concurrency, default 500) at depth session into a JSON lines sink
// that discards: the scan's own work, for profiles (-cpuprofile,
// -blockprofile, -mutexprofile) of the fleet bench/scan-vs-zgrab2.sh
// starts with PROFILE=1.
func BenchmarkScanTargets(b *testing.B) {
	list := os.Getenv("SCAN_BENCH_TARGETS")
	if list == "" {
		b.Skip("SCAN_BENCH_TARGETS is not set: bench/scan-vs-zgrab2.sh sets it (PROFILE=1)")
	}
	text, err := os.ReadFile(list)
	if err != nil {
		b.Fatal(err)
	}
	roots := x509.NewCertPool()
	if ca := os.Getenv("SCAN_BENCH_CA"); ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			b.Fatal(err)
		}
		roots.AppendCertsFromPEM(pem)
	}
	c, _ := strconv.Atoi(os.Getenv("SCAN_BENCH_C"))
	if c <= 0 {
		c = 500
	}
	n := strings.Count(string(text), "\n")
	var ok int64
	var elapsed time.Duration
	for b.Loop() {
		sum, err := Run(context.Background(), strings.NewReader(string(text)), "", NewJSONL(discardCloser{}, nil),
			Options{Depth: check.Session, Concurrency: c, Timeout: 10 * time.Second, Roots: roots})
		if err != nil {
			b.Fatal(err)
		}
		ok += sum.Statuses["success"]
		elapsed += sum.Elapsed
	}
	b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "targets/s")
	b.ReportMetric(float64(ok)/float64(b.N), "ok/run")
}
