package scan

import (
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/serve"
)

// countingListener counts the connections a server accepts.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// A session-depth scan opens one connection per target and still reports
// the upgrade and the certificate; quick opens more (probes), so the
// count tells the depths apart.
func TestSessionDepthOneConnection(t *testing.T) {
	dir := t.TempDir()
	tc, caFile, err := serve.ThrowawayTLS(dir, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conns := map[string]int64{}
	for _, depth := range []string{check.Session, check.Quick} {
		raw, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		l := &countingListener{Listener: raw}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		srv, err := serve.Start(ctx, serve.Options{Protocol: starttls.SMTP, Listener: l, TLSConfig: tc, IdleTimeout: 10 * time.Second})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		sink := &memSink{}
		o := Options{Depth: depth, Concurrency: 1, Timeout: 5 * time.Second, Roots: caPool(t, caFile)}
		if _, err := Run(ctx, strings.NewReader("smtp://"+srv.Addr.String()+"\n"), "", sink, o); err != nil {
			cancel()
			t.Fatal(err)
		}
		_ = srv.Close()
		cancel()
		if len(sink.recs) != 1 {
			t.Fatalf("%s: %d records", depth, len(sink.recs))
		}
		r := sink.recs[0]
		if r.Status != starttls.StatusSuccess || r.TLSVersion == "" || r.Report == nil ||
			!r.Report.StartTLS.Upgraded || len(r.Report.StartTLS.CapabilitiesAfter) == 0 || !r.Report.Certificate.Verification.Trusted {
			t.Fatalf("%s: record %+v", depth, r)
		}
		if depth == check.Session && (len(r.Report.StartTLS.Probes) != 0 || len(r.Report.TLS.Versions) != 0) {
			t.Errorf("session depth ran probes: %v, versions %v", r.Report.StartTLS.Probes, r.Report.TLS.Versions)
		}
		conns[depth] = l.n.Load()
	}
	if conns[check.Session] != 1 || conns[check.Quick] <= 1 {
		t.Errorf("connections per target: %v, want session 1 and quick more", conns)
	}
}
