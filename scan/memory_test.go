package scan

import (
	"context"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// heapSampler is a Progress that measures the live heap when the
// n-th target is stored, for each n in at: the writer is the one place
// that sees every target finish, in order.
type heapSampler struct {
	done  atomic.Int64
	at    []int64
	heap  []uint64 // live heap after a full GC, one per at
	ngo   []int
	timed []time.Duration
	start time.Time
}

func (h *heapSampler) Done(starttls.Status) {
	n := h.done.Add(1)
	for i, a := range h.at {
		if n == a {
			// Twice: the first GC moves sync.Pool contents to their
			// victim cache, the second frees them.
			runtime.GC()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			h.heap[i], h.ngo[i], h.timed[i] = ms.HeapAlloc, runtime.NumGoroutine(), time.Since(h.start)
		}
	}
}

func (h *heapSampler) Finish() {}

// vmHWM is the process's peak resident set in kB (Linux), 0 if unknown.
func vmHWM() string {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// A scan of 100,000 targets keeps its memory flat: the live heap once
// 100,000 targets are stored is within a small constant of what it was
// at 10,000. Keeping anything per target (a record, a report, a key in
// a map) would add at least 40 bytes for each of the 89,000 between the
// samples, 3.4 MiB; the bound is 1 MiB, about 12 bytes per target.
// Every target is a closed port on loopback (connect-refused at once),
// read from a pipe as `--input -` would be.
func TestMemoryFlat100k(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 connections: not with -short")
	}
	// The second sample is taken while the workers are still busy, as at
	// the first: the end of the scan, with no check running, would
	// flatter the figure.
	const n, first, second, c = 100_000, 10_000, 99_000, 100
	const bound = 1 << 20
	loopback := netip.MustParsePrefix("127.0.0.0/8")
	var outside atomic.Int64
	// Only loopback is ever dialled, whatever the generator writes.
	guarded := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		if ip, err := netip.ParseAddr(tg.Host); err != nil || !loopback.Contains(ip) {
			outside.Add(1)
			return &check.Report{Status: starttls.StatusError, Error: "not loopback: " + tg.Host, Findings: []check.Finding{}}
		}
		return check.Run(ctx, tg, o)
	}
	h := &heapSampler{at: []int64{first, second, n}, heap: make([]uint64, 3), ngo: make([]int, 3), timed: make([]time.Duration, 3), start: time.Now()}
	sink := &countSink{}
	sum, err := Run(context.Background(), generator(n), "", sink,
		Options{Concurrency: c, Timeout: 2 * time.Second, Check: guarded, Progress: h})
	if err != nil {
		t.Fatal(err)
	}
	if outside.Load() > 0 {
		t.Fatalf("%d targets outside 127.0.0.0/8", outside.Load())
	}
	if sink.n.Load() != n || sum.Scanned != n {
		t.Fatalf("stored %d of %d: %s", sink.n.Load(), n, sum)
	}
	// Something else may listen on a low loopback port; a handful is no
	// memory question.
	if refused := sum.Statuses[starttls.StatusConnectRefused]; refused < n*99/100 {
		t.Errorf("only %d of %d connect-refused: %s", refused, n, sum)
	}
	growth := int64(h.heap[1]) - int64(h.heap[0])
	for i, a := range h.at {
		t.Logf("live heap after GC at %6d stored: %.2f MiB (%s, %d goroutines)", a, mib(h.heap[i]), h.timed[i].Round(time.Millisecond), h.ngo[i])
	}
	t.Logf("growth from %d to %d: %+d bytes, %.1f bytes/target (bound %d bytes)", first, second, growth, float64(growth)/float64(second-first), bound)
	t.Logf("%s; max held %d, max in flight %d; process VmHWM %s", sum, sum.MaxHeld, sum.MaxInFlight, vmHWM())
	if growth > bound {
		t.Errorf("live heap grew by %d bytes between %d and %d targets stored, bound %d: memory is O(targets)", growth, first, second, bound)
	}
	if bound := int64(3*c + 256 + 1); sum.MaxHeld > bound {
		t.Errorf("held up to %d targets at once, bound %d", sum.MaxHeld, bound)
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
