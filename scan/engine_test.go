package scan

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/scan/scantest"
)

// memSink keeps records in memory (tests only).
type memSink struct {
	mu      sync.Mutex
	recs    []Record
	batches int
}

func (m *memSink) Write(_ context.Context, recs []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.recs = append(m.recs, recs...)
	m.batches++
	return nil
}

func (m *memSink) Stored(_ context.Context, keys []string) (map[string]bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]bool{}
	for _, r := range m.recs {
		out[r.Target] = true
		if r.Domain != "" {
			out[DomainKey(r.Domain)] = true
		}
	}
	for k := range out {
		found := false
		for _, q := range keys {
			found = found || q == k
		}
		if !found {
			delete(out, k)
		}
	}
	return out, nil
}

func (m *memSink) Close() error { return nil }

// countSink counts records and keeps nothing.
type countSink struct{ n atomic.Int64 }

func (c *countSink) Write(_ context.Context, recs []Record) error {
	c.n.Add(int64(len(recs)))
	return nil
}
func (c *countSink) Stored(context.Context, []string) (map[string]bool, error) {
	return map[string]bool{}, nil
}
func (c *countSink) Close() error { return nil }

func startFleet(t *testing.T, per int, addrs int) *scantest.Fleet {
	t.Helper()
	n := map[scantest.Kind]int{}
	for _, k := range scantest.Kinds {
		n[k] = per
	}
	f, err := scantest.Start(t.TempDir(), n, addrs)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func caPool(t *testing.T, file string) *x509.CertPool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	p := x509.NewCertPool()
	p.AppendCertsFromPEM(b)
	return p
}

func list(f *scantest.Fleet) string {
	var b strings.Builder
	for _, t := range f.Targets {
		b.WriteString(t.URL + "\n")
	}
	return b.String()
}

// Every kind of target gets its class, each target exactly one record,
// and the scan ends within a bound derived from the timeouts.
func TestFleetOutcomes(t *testing.T) {
	f := startFleet(t, 4, 10)
	sink := &memSink{}
	timeout, retries := 700*time.Millisecond, 1
	o := Options{Concurrency: 24, Timeout: timeout, Retries: retries, PerSubnet: 8, Roots: caPool(t, f.CAFile)}
	start := time.Now()
	sum, err := Run(context.Background(), strings.NewReader(list(f)), "", sink, o)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	want := f.WantOf()
	got := map[string]int{}
	for _, r := range sink.recs {
		got[r.Target]++
		if w := want[r.Target]; r.Status != w {
			t.Errorf("%s: %s (%s), want %s", r.Target, r.Status, r.Error, w)
		}
		if r.Status == starttls.StatusSuccess {
			if r.Grade == "" || r.TLSVersion == "" || r.CipherSuite == "" || r.Report == nil || r.Report.Schema != check.Schema {
				t.Errorf("%s: incomplete record %+v", r.Target, r)
			}
			if r.Report.Certificate.Verification.Trusted != true {
				t.Errorf("%s: --ca not used: %+v", r.Target, r.Report.Certificate.Verification)
			}
		}
		switch r.Status {
		case starttls.StatusCertificate:
			// Upgraded all the same: the record says how, and why the chain failed.
			if r.TLSVersion == "" || r.Report == nil || r.Report.Status != starttls.StatusSuccess || r.Report.Certificate.Verification.Trusted ||
				!r.Report.Has("cert-untrusted") || !strings.HasPrefix(r.Error, "certificate: ") {
				t.Errorf("%s: certificate-error record %+v", r.Target, r)
			}
		case StatusGreetingTimeout, starttls.StatusTimeout:
			wantPhase := map[starttls.Status]starttls.Phase{StatusGreetingTimeout: starttls.PhaseGreeting, starttls.StatusTimeout: starttls.PhaseCaps}[r.Status]
			if p := phaseOf(r.Error); p != wantPhase || r.Report == nil || r.Report.Status != starttls.StatusTimeout {
				t.Errorf("%s: %s in phase %q (%s), want %q", r.Target, r.Status, p, r.Error, wantPhase)
			}
		}
		if retryable(r.Status) && r.Attempts != retries+1 || !retryable(r.Status) && r.Attempts != 1 {
			t.Errorf("%s: %s after %d attempts", r.Target, r.Status, r.Attempts)
		}
	}
	for k := range want {
		if got[k] != 1 {
			t.Errorf("%s: %d records", k, got[k])
		}
	}
	if sum.Scanned != int64(len(want)) || sum.Read != int64(len(want)) {
		t.Errorf("summary %+v", sum)
	}
	// Stalling targets take (retries+1) attempts × the greeting timeout;
	// with enough workers the scan is not much longer than one of them.
	bound := time.Duration(retries+1)*(2*timeout) + 5*time.Second
	if elapsed > bound {
		t.Errorf("scan took %s, bound %s", elapsed, bound)
	}
	if sum.MaxPerSubnet > 8 {
		t.Errorf("%d at once in one /24, limit 8", sum.MaxPerSubnet)
	}
	t.Logf("%s", sum)
}

// A check that ignores its deadline cannot stall the scan.
func TestHungCheckGivesUp(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	hang := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		<-release
		return &check.Report{Status: starttls.StatusSuccess}
	}
	sink := &memSink{}
	o := Options{Concurrency: 4, Timeout: 100 * time.Millisecond, TargetTimeout: 200 * time.Millisecond, Check: hang}
	start := time.Now()
	_, err := Run(context.Background(), strings.NewReader("smtp://127.0.0.1:1\nsmtp://127.0.0.1:2\n"), "", sink, o)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %s", d)
	}
	if len(sink.recs) != 2 || sink.recs[0].Status != starttls.StatusTimeout {
		t.Errorf("records %+v", sink.recs)
	}
}

// generator writes n targets (closed ports on many loopback addresses,
// answered at once with RST) into a pipe, as `--input -` would read them.
func generator(n int) io.Reader {
	r, w := io.Pipe()
	go func() {
		for i := range n {
			fmt.Fprintf(w, "smtp://127.0.%d.%d:%d\n", 1+i/250%250, 2+i%250, 1+i%7)
		}
		w.Close()
	}()
	return r
}

// Memory is O(concurrency): the engine never holds more targets than its
// channels and one batch, whatever the input's length.
func TestMemoryBounded(t *testing.T) {
	const n, c, batch = 5000, 32, 64
	var inFlight, peak atomic.Int64
	counting := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		raise(&peak, inFlight.Add(1))
		defer inFlight.Add(-1)
		return check.Run(ctx, tg, o)
	}
	sink := &countSink{}
	sum, err := Run(context.Background(), generator(n), "", sink, Options{Concurrency: c, BatchSize: batch, Timeout: 2 * time.Second, Check: counting})
	if err != nil {
		t.Fatal(err)
	}
	if sink.n.Load() != n || sum.Scanned != n || sum.Statuses[starttls.StatusConnectRefused] != n {
		t.Fatalf("stored %d, summary %s", sink.n.Load(), sum)
	}
	bound := int64(3*c + batch + resumeChunk + 1)
	if sum.MaxHeld > bound || sum.MaxHeld < 1 {
		t.Errorf("held up to %d targets at once, bound %d (of %d)", sum.MaxHeld, bound, n)
	}
	if peak.Load() > c || sum.MaxInFlight > c {
		t.Errorf("%d/%d checks at once, concurrency %d", peak.Load(), sum.MaxInFlight, c)
	}
	t.Logf("%s; max held %d, max in flight %d", sum, sum.MaxHeld, sum.MaxInFlight)
}

// N targets at --rate R take at least (N-burst)/R seconds.
func TestRateLimit(t *testing.T) {
	const n, r = 30, 40.0
	sink := &countSink{}
	start := time.Now()
	sum, err := Run(context.Background(), generator(n), "", sink, Options{Concurrency: 16, Rate: r, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	min := time.Duration(float64(n-1) / r * float64(time.Second))
	if d := time.Since(start); d < min*95/100 || d > min+5*time.Second {
		t.Errorf("%d targets at %.0f/s took %s, want at least %s", n, r, d, min)
	}
	if sum.Scanned != n {
		t.Errorf("summary %s", sum)
	}
}

// --rate counts connections: every connection a check opens, and a
// retry's, takes a token (docs/scan.md, Rate).
func TestRateCountsConnections(t *testing.T) {
	const n, perCheck, r = 6, 3, 40.0
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepted atomic.Int64
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	var calls atomic.Int64
	// Each attempt opens perCheck connections, as a quick check's probes do,
	// and fails retryably once.
	probing := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		attempt := calls.Add(1)
		if o.Dial == nil {
			t.Error("the check was given no rate-limited dialer")
			return &check.Report{Status: starttls.StatusError, Findings: []check.Finding{}}
		}
		for range perCheck {
			c, err := o.Dial(ctx, "tcp", l.Addr().String())
			if err != nil {
				t.Error(err)
				break
			}
			c.Close()
		}
		status := starttls.StatusSuccess
		if attempt <= n {
			status = starttls.StatusTimeout
		}
		return &check.Report{Status: status, Findings: []check.Finding{}}
	}
	start := time.Now()
	sum, err := Run(context.Background(), generator(n), "", &countSink{}, Options{Concurrency: n, Rate: r, Retries: 1, Check: probing})
	if err != nil {
		t.Fatal(err)
	}
	conns := int64(2 * n * perCheck) // n first attempts and n retries
	min := time.Duration(float64(conns-1) / r * float64(time.Second))
	deadline := time.Now().Add(2 * time.Second)
	for accepted.Load() < conns && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if d := time.Since(start); d < min*95/100 || accepted.Load() != conns || sum.Attempts != 2*n {
		t.Errorf("%d connections (%d attempts) at %.0f/s took %s, want %d taking at least %s", accepted.Load(), sum.Attempts, r, d, conns, min)
	}
}

// At most PerSubnet checks run at once in one /24, counted independently.
func TestPerSubnet(t *testing.T) {
	var mu sync.Mutex
	now, peak := map[string]int{}, map[string]int{}
	slow := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		net24 := tg.Host[:strings.LastIndex(tg.Host, ".")]
		mu.Lock()
		now[net24]++
		peak[net24] = max(peak[net24], now[net24])
		mu.Unlock()
		time.Sleep(20 * time.Millisecond)
		mu.Lock()
		now[net24]--
		mu.Unlock()
		return &check.Report{Status: starttls.StatusSuccess}
	}
	var in strings.Builder
	for i := range 120 {
		fmt.Fprintf(&in, "smtp://127.0.%d.%d:25\n", i%2, 2+i/2)
	}
	sum, err := Run(context.Background(), strings.NewReader(in.String()), "", &countSink{}, Options{Concurrency: 40, PerSubnet: 3, Check: slow})
	if err != nil {
		t.Fatal(err)
	}
	if peak["127.0.0"] != 3 || peak["127.0.1"] != 3 || sum.MaxPerSubnet != 3 {
		t.Errorf("peaks %v, summary %d; want 3 each", peak, sum.MaxPerSubnet)
	}
}

// Host names are resolved once each, concurrently, and checked by address
// with the name kept for SNI and the record.
func TestDNSCache(t *testing.T) {
	var calls atomic.Int64
	seen := make(chan string, 10)
	fake := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		calls.Add(1)
		seen <- tg.Host + " " + o.ServerName
		return &check.Report{Status: starttls.StatusSuccess}
	}
	in := "smtp://localhost:1\nsmtp://localhost:2\nsmtp://localhost:3\nsmtp://no-such-host.invalid:25\n"
	sink := &memSink{}
	_, err := Run(context.Background(), strings.NewReader(in), "", sink, Options{Concurrency: 4, Check: fake, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	close(seen)
	for s := range seen {
		if s != "127.0.0.1 localhost" && s != "::1 localhost" {
			t.Errorf("checked %q, want the address and the name", s)
		}
	}
	for _, r := range sink.recs {
		if strings.Contains(r.Target, "invalid") != (r.Status == StatusDNS) {
			t.Errorf("%s: %s %s", r.Target, r.Status, r.Error)
		}
		if r.Status == starttls.StatusSuccess && (r.Host != "localhost" || r.IP == "") {
			t.Errorf("%s: host %q ip %q", r.Target, r.Host, r.IP)
		}
	}
	if calls.Load() != 3 {
		t.Errorf("%d checks", calls.Load())
	}
}

// A canceled scan stops reading, stores what finished and says why.
func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var n atomic.Int64
	fake := func(ctx context.Context, tg starttls.Target, o check.Options) *check.Report {
		if n.Add(1) == 50 {
			cancel()
		}
		return &check.Report{Status: starttls.StatusSuccess}
	}
	sink := &countSink{}
	sum, err := Run(ctx, generator(100000), "", sink, Options{Concurrency: 8, Check: fake})
	if err == nil {
		t.Fatal("no error after cancel")
	}
	if sum.Read > 1000 || sink.n.Load() != sum.Scanned {
		t.Errorf("read %d after cancel; stored %d, scanned %d", sum.Read, sink.n.Load(), sum.Scanned)
	}
}

// refusingServer answers every connection with 554 and counts the
// source addresses they came from, which sources returns.
func refusingServer(t *testing.T) (port int, sources func() map[string]int) {
	t.Helper()
	var mu sync.Mutex
	from := map[string]int{}
	addr := loopback.Serve(t, 5*time.Second, func(c net.Conn) {
		host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
		mu.Lock()
		from[host]++
		mu.Unlock()
		_, _ = c.Write([]byte("554 5.3.2 not today\r\n"))
	})
	_, p, _ := net.SplitHostPort(addr)
	port, _ = strconv.Atoi(p)
	return port, func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		return maps.Clone(from)
	}
}

// Every connection of a check comes from SourceIP, names resolve to its
// family, and a literal address of the other family is refused without
// a connection.
func TestSourceIP(t *testing.T) {
	port, sources := refusingServer(t)
	in := fmt.Sprintf("smtp://127.0.0.1:%d\nsmtp://localhost:%d\nsmtp://[::1]:%d\n", port, port, port)
	sink := &memSink{}
	_, err := Run(context.Background(), strings.NewReader(in), "", sink,
		Options{Concurrency: 2, Timeout: 2 * time.Second, SourceIP: netip.MustParseAddr("127.0.0.7")})
	if err != nil {
		t.Fatal(err)
	}
	from := sources()
	if len(from) != 1 || from["127.0.0.7"] < 2 {
		t.Errorf("connections came from %v, want only 127.0.0.7 (at least one per IPv4 target)", from)
	}
	if len(sink.recs) != 3 {
		t.Fatalf("%d records", len(sink.recs))
	}
	for _, r := range sink.recs {
		v6 := strings.Contains(r.Target, "[::1]")
		switch {
		case v6 && (r.Status != starttls.StatusError || !strings.Contains(r.Error, "family")):
			t.Errorf("%s: %s %q, want an error naming the address family", r.Target, r.Status, r.Error)
		case !v6 && (r.IP != "127.0.0.1" || r.Status == StatusDNS || r.Status == starttls.StatusError):
			t.Errorf("%s: ip %q status %s %q", r.Target, r.IP, r.Status, r.Error)
		}
	}
}
