package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// recConn records each write that reaches the socket, and fails once
// failAfter writes have gone through (failAfter < 0: never). With next set
// it passes what it records on.
type recConn struct {
	net.Conn  // next, or nil
	mu        sync.Mutex
	writes    [][]byte
	failAfter int
}

var errRecFailed = errors.New("recConn: write failed")

func (r *recConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	if r.failAfter >= 0 && len(r.writes) >= r.failAfter {
		r.mu.Unlock()
		return 0, errRecFailed
	}
	r.writes = append(r.writes, bytes.Clone(p))
	r.mu.Unlock()
	if r.Conn != nil {
		return r.Conn.Write(p)
	}
	return len(p), nil
}

func (r *recConn) recorded() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

// Outside a batch every write goes through at once; inside one, the
// writes of the batch and those of other goroutines (crypto/tls's reading
// side) leave whole and in the order they were made.
func TestBatchConnOrder(t *testing.T) {
	rec := &recConn{failAfter: -1}
	bc := &batchConn{Conn: rec}
	if _, err := bc.Write([]byte("direct;")); err != nil {
		t.Fatal(err)
	}
	if w := rec.recorded(); len(w) != 1 || string(w[0]) != "direct;" {
		t.Fatalf("a write outside a batch was held back: %q", w)
	}
	const rounds = 300
	var wg sync.WaitGroup
	var other sync.Mutex // as crypto/tls's out lock: one record at a time
	wg.Go(func() {
		for i := range rounds {
			other.Lock()
			bc.begin()
			_, _ = fmt.Fprintf(bc, "A%d.1;", i)
			_, _ = fmt.Fprintf(bc, "A%d.2;", i)
			other.Unlock()
			if err := bc.end(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Go(func() {
		for i := range rounds {
			other.Lock()
			_, err := fmt.Fprintf(bc, "B%d;", i)
			other.Unlock()
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	var all bytes.Buffer
	for _, w := range rec.recorded() {
		if !bytes.HasSuffix(w, []byte(";")) {
			t.Fatalf("a write was split: %q", w)
		}
		all.Write(w)
	}
	toks := strings.Split(strings.TrimSuffix(all.String(), ";"), ";")
	if len(toks) != 1+3*rounds {
		t.Fatalf("%d tokens, want %d", len(toks), 1+3*rounds)
	}
	nextA, nextB := 0, 0
	for _, tok := range toks[1:] {
		switch tok {
		case fmt.Sprintf("A%d.%d", nextA/2, nextA%2+1):
			nextA++
		case fmt.Sprintf("B%d", nextB):
			nextB++
		default:
			t.Fatalf("token %q out of order (next A %d, next B %d)", tok, nextA, nextB)
		}
	}
	if len(rec.recorded()) > 1+2*rounds {
		t.Errorf("%d socket writes for %d batches and %d single writes", len(rec.recorded()), rounds, rounds)
	}
}

// A batch larger than maxBatch goes out in pieces, in order; a write larger
// than the whole buffer goes straight through after what was gathered.
func TestBatchConnLarge(t *testing.T) {
	rec := &recConn{failAfter: -1}
	bc := &batchConn{Conn: rec}
	var want bytes.Buffer
	bc.begin()
	for i := range 10 {
		p := bytes.Repeat([]byte{byte('a' + i)}, maxBatch/3)
		want.Write(p)
		if _, err := bc.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	huge := bytes.Repeat([]byte{'z'}, maxBatch+1)
	want.Write(huge)
	if _, err := bc.Write(huge); err != nil {
		t.Fatal(err)
	}
	if err := bc.end(); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, w := range rec.recorded() {
		if len(w) > maxBatch && !bytes.Equal(w, huge) {
			t.Errorf("a socket write of %d bytes, more than maxBatch", len(w))
		}
		got.Write(w)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Fatal("bytes changed or reordered")
	}
}

// The handshake goes through an idle batchConn untouched (crypto/tls
// buffers its own flights); after it, one batched tls.Conn.Write of
// several records is one write to the socket and reads back whole.
func TestBatchConnTLS(t *testing.T) {
	pki := newTestPKI(t)
	cert, err := tls.LoadX509KeyPair(pki.certFile, pki.keyFile)
	if err != nil {
		t.Fatal(err)
	}
	cs, ss := net.Pipe()
	defer cs.Close()
	defer ss.Close()
	_ = cs.SetDeadline(time.Now().Add(20 * time.Second))
	_ = ss.SetDeadline(time.Now().Add(20 * time.Second))
	rec := &recConn{Conn: ss, failAfter: -1}
	bc := &batchConn{Conn: rec}
	srv := tls.Server(bc, &tls.Config{Certificates: []tls.Certificate{cert}})
	cli := tls.Client(cs, pki.clientTLS())
	payload := bytes.Repeat([]byte("0123456789abcdef"), 3*maxRecordPayload/32) // two records
	got := make(chan []byte, 1)
	go func() {
		if err := cli.Handshake(); err != nil {
			t.Error(err)
			got <- nil
			return
		}
		b, _ := io.ReadAll(io.LimitReader(cli, int64(len(payload))))
		got <- b
	}()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	before := len(rec.recorded())
	bc.begin()
	if bc.buf == nil || len(*bc.buf) != 0 {
		t.Fatal("a batch starts empty")
	}
	if _, err := srv.Write(payload); err != nil {
		t.Fatal(err)
	}
	if n := len(rec.recorded()); n != before {
		t.Fatalf("%d socket writes during the batch, want none before its end", n-before)
	}
	if err := bc.end(); err != nil {
		t.Fatal(err)
	}
	if w := rec.recorded()[before:]; len(w) != 1 {
		t.Fatalf("%d socket writes for one batch, want 1", len(w))
	}
	if b := <-got; !bytes.Equal(b, payload) {
		t.Fatalf("client read %d bytes, want the %d written", len(b), len(payload))
	}
}

// A failed socket write is the batch's error and every later write's:
// crypto/tls counted those records as sent.
func TestBatchConnError(t *testing.T) {
	rec := &recConn{failAfter: 1}
	bc := &batchConn{Conn: rec}
	if _, err := bc.Write([]byte("ok")); err != nil {
		t.Fatal(err)
	}
	bc.begin()
	if _, err := bc.Write([]byte("lost")); err != nil {
		t.Fatalf("a write inside a batch failed before its end: %v", err)
	}
	if err := bc.end(); !errors.Is(err, errRecFailed) {
		t.Fatalf("end: %v, want the socket's error", err)
	}
	if _, err := bc.Write([]byte("later")); !errors.Is(err, errRecFailed) {
		t.Fatalf("a later write: %v, want the socket's error", err)
	}
	bc.begin()
	if err := bc.end(); !errors.Is(err, errRecFailed) {
		t.Fatalf("a later batch: %v, want the socket's error", err)
	}
}
