package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/benchload"
	"github.com/starttls-go/starttls/internal/loopback"
)

// The benchmarks put the proxy and a plain crypto/tls relay (tls.Listen and
// io.Copy each way, the floor for any Go relay) in front of the same
// backend in the same run, so that their ratio survives a noisy machine:
//
//	go test ./proxy -run '^$' -bench 'Relay|Handshake' -benchtime 2s -count 3
//
// bench/proxy-vs-stunnel.sh is the same load across processes, with stunnel.

// benchChunk is one iteration's payload: whole lines, about 64 KiB.
var benchChunk = bytes.Repeat(benchload.Line, (64<<10)/len(benchload.Line))

// startBenchBackend serves benchload's SMTP-shaped load, the one
// bench/loadgen puts behind a proxy. Unlike the test backend it neither
// records nor hashes, so that the proxy's cost is what the benchmark sees.
func startBenchBackend(b testing.TB) string {
	b.Helper()
	return loopback.Serve(b, benchConnLife, func(c net.Conn) { benchload.Serve(c, 5*time.Minute) })
}

// startGoRelay is the baseline: implicit TLS in, io.Copy both ways.
func startGoRelay(b testing.TB, pki *testPKI, backend string) string {
	b.Helper()
	cert, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
	if err != nil {
		b.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	if err != nil {
		b.Fatal(err)
	}
	loopback.ServeListener(b, ln, benchConnLife, func(c net.Conn) {
		be, err := net.Dial("tcp", backend)
		if err != nil {
			return
		}
		defer be.Close()
		done := make(chan struct{})
		go func() { _, _ = io.Copy(be, c); _ = be.(*net.TCPConn).CloseWrite(); close(done) }()
		_, _ = io.Copy(c, be)
		_ = c.(*tls.Conn).CloseWrite()
		<-done
	})
	return ln.Addr().String()
}

// benchConnLife bounds a benchmark connection's life (loopback sets it as
// the deadline): far above any session a benchmark holds open.
const benchConnLife = 30 * time.Minute

// benchTarget is one contestant: an address and how a client opens a
// session there (greeting read, EHLO answered, inside TLS where TLS is).
type benchTarget struct {
	name string
	addr string
	mode string // implicit, starttls or plain
}

func benchTargets(b *testing.B, withOriginate bool) []benchTarget {
	pki := newTestPKI(b)
	backend := startBenchBackend(b)
	cs, err := LoadCertStore(pki.certFile, pki.keyFile)
	if err != nil {
		b.Fatal(err)
	}
	ls := []Listener{
		{Mode: Implicit, Protocol: "smtps", Backend: backend, Certificates: cs},
		{Mode: Terminate, Protocol: starttls.SMTP, Backend: backend, Certificates: cs},
	}
	srv := startProxy(b, Options{}, ls...)
	ts := []benchTarget{
		{"gorelay", startGoRelay(b, pki, backend), "implicit"},
		{"implicit", srv.Addr(0).String(), "implicit"},
		{"terminate", srv.Addr(1).String(), "starttls"},
	}
	if withOriginate {
		// Towards our own terminate listener, as in the bench script.
		orig := startProxy(b, Options{}, Listener{Mode: Originate, Protocol: starttls.SMTP,
			Backend: srv.Addr(1).String(), ClientTLS: pki.clientTLS()})
		ts = append(ts, benchTarget{"originate", orig.Addr(0).String(), "plain"})
	}
	benchClientTLS = pki.clientTLS()
	return ts
}

// benchClientTLS has no session cache: every handshake is a full one.
var benchClientTLS *tls.Config

func (bt benchTarget) open(b *testing.B) (net.Conn, *bufio.Reader) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if bt.mode == "starttls" {
		c, err := starttls.Dial(ctx, starttls.SMTP, bt.addr, &starttls.Config{TLSConfig: benchClientTLS})
		if err != nil {
			b.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(5 * time.Minute))
		return c, bufio.NewReaderSize(c, 64<<10)
	}
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", bt.addr)
	if err != nil {
		b.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(5 * time.Minute))
	c := raw
	if bt.mode == "implicit" {
		tc := tls.Client(raw, benchClientTLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			b.Fatal(err)
		}
		c = tc
	}
	br := bufio.NewReaderSize(c, 64<<10)
	benchExpect(b, br, "220")
	benchSend(b, c, "EHLO bench\r\n")
	benchExpect(b, br, "250")
	return c, br
}

func benchSend(b *testing.B, c net.Conn, s string) {
	b.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		b.Fatal(err)
	}
}

// benchExpect reads one reply and checks its code.
func benchExpect(b *testing.B, br *bufio.Reader, code string) {
	b.Helper()
	for range 100 {
		l, err := br.ReadString('\n')
		if err != nil {
			b.Fatalf("want %s: %v", code, err)
		}
		if !strings.HasPrefix(l, code) {
			b.Fatalf("want %s, got %q", code, l)
		}
		if len(l) < 4 || l[3] != '-' {
			return
		}
	}
	b.Fatal("reply too long")
}

// BenchmarkRelay moves a mail body up (DATA, through the SMTP command
// filter's body path) and lines down (through the reply filter) on one
// connection, per contestant.
func BenchmarkRelay(b *testing.B) {
	ts := benchTargets(b, false)
	for _, dir := range []string{"up", "down"} {
		for _, bt := range ts {
			b.Run(dir+"/"+bt.name, func(b *testing.B) {
				c, br := bt.open(b)
				defer c.Close()
				b.SetBytes(int64(len(benchChunk)))
				defer reportCPU(b, processCPU())
				if dir == "up" {
					benchSend(b, c, "DATA\r\n")
					benchExpect(b, br, "354")
					b.ResetTimer()
					for range b.N {
						if _, err := c.Write(benchChunk); err != nil {
							b.Fatal(err)
						}
					}
					benchSend(b, c, ".\r\n")
					benchExpect(b, br, "250")
					return
				}
				total := int64(b.N) * int64(len(benchChunk))
				b.ResetTimer()
				benchSend(b, c, fmt.Sprintf("BLOB %d\r\n", total))
				var got int64
				for got < total {
					l, err := br.ReadSlice('\n')
					if err != nil && err != bufio.ErrBufferFull {
						b.Fatalf("after %d of %d bytes: %v", got, total, err)
					}
					got += int64(len(l))
				}
				benchExpect(b, br, "250")
			})
		}
	}
}

// BenchmarkHandshake opens full sessions one after the other (TCP, TLS or
// STARTTLS, EHLO inside TLS, QUIT; no resumption) and reports them per second.
func BenchmarkHandshake(b *testing.B) {
	ts := benchTargets(b, true)
	for _, bt := range ts {
		b.Run(bt.name, func(b *testing.B) {
			start := time.Now()
			defer reportCPU(b, processCPU())
			for range b.N {
				c, br := bt.open(b)
				benchSend(b, c, "QUIT\r\n")
				benchExpect(b, br, "221")
				c.Close()
			}
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "sessions/s")
		})
	}
}

// reportCPU adds the process's CPU time per operation since cpu0 (client,
// proxy and backend together; the relay is the only part that differs
// between contestants).
func reportCPU(b *testing.B, cpu0 time.Duration) {
	if cpu0 > 0 {
		b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
	}
}
