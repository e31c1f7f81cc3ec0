package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/starttls-go/starttls/internal/relayq"
)

// errIdle ends a session without traffic in either direction.
var errIdle = errors.New("idle timeout")

// activity is the last time a byte moved in either direction.
type activity struct{ last atomic.Int64 }

func (a *activity) touch(now time.Time) { a.last.Store(now.UnixNano()) }
func (a *activity) since() time.Duration {
	return time.Since(time.Unix(0, a.last.Load()))
}

// refreshEvery is how often a busy direction moves its deadline: setting
// one per read or write costs more than the copy of a small record.
func refreshEvery(idle time.Duration) time.Duration { return min(idle/8, time.Second) }

// idleReader reads r with conn's read deadline at the idle timeout; a
// timeout while the other direction moves is not idleness, so it waits again.
type idleReader struct {
	r       io.Reader
	conn    net.Conn
	idle    time.Duration
	act     *activity
	lastSet time.Time
	err     error // the first read error, kept for the session's reason
}

func newIdleReader(r io.Reader, conn net.Conn, idle time.Duration, act *activity) *idleReader {
	return &idleReader{r: r, conn: conn, idle: idle, act: act}
}

// setIdle changes the timeout (the backend's greeting is read under the
// connect timeout, the relay under the idle one).
func (ir *idleReader) setIdle(d time.Duration) { ir.idle, ir.lastSet = d, time.Time{} }

func (ir *idleReader) Read(p []byte) (int, error) {
	// Each round waits at least idle minus the time since the last
	// activity, so the loop ends after at most a few rounds per idle period.
	for {
		now := time.Now()
		if now.Sub(ir.lastSet) >= refreshEvery(ir.idle) {
			_ = ir.conn.SetReadDeadline(now.Add(ir.idle))
			ir.lastSet = now
		}
		n, err := ir.r.Read(p)
		if n > 0 {
			ir.act.touch(now)
		}
		if err != nil && n == 0 && isTimeout(err) {
			if ir.act.since() < ir.idle {
				ir.lastSet = time.Time{}
				continue
			}
			err = errIdle
		}
		if err != nil && ir.err == nil {
			ir.err = err
		}
		return n, err
	}
}

// countWriter writes to conn with a write deadline at the idle timeout and
// counts bytes (reported in batches: a metric update per write costs more
// than a small write).
type countWriter struct {
	w       io.Writer
	conn    net.Conn
	idle    time.Duration
	act     *activity
	lastSet time.Time
	counted time.Time // when pending was last reported
	n       int64
	pending int
	count   func(int)
	err     error
	// batch, when set, is the socket under w (a *tls.Conn): the records
	// of a write longer than one record leave in one system call.
	batch *batchConn
}

func (cw *countWriter) Write(p []byte) (int, error) {
	now := time.Now()
	if now.Sub(cw.lastSet) >= refreshEvery(cw.idle) {
		_ = cw.conn.SetWriteDeadline(now.Add(cw.idle))
		cw.lastSet = now
	}
	var n int
	var err error
	if cw.batch != nil && len(p) > maxRecordPayload {
		cw.batch.begin()
		n, err = cw.w.Write(p)
		if berr := cw.batch.end(); err == nil {
			err = berr
		}
	} else {
		n, err = cw.w.Write(p)
	}
	if n > 0 {
		cw.n += int64(n)
		cw.act.touch(now)
		// Reported every MiB or every second, so metrics move during long sessions.
		if cw.pending += n; cw.pending >= 1<<20 || now.Sub(cw.counted) >= time.Second {
			cw.flushCount()
			cw.counted = now
		}
	}
	if err != nil && cw.err == nil {
		cw.err = err
	}
	return n, err
}

func (cw *countWriter) flushCount() {
	if cw.pending > 0 {
		cw.count(cw.pending)
		cw.pending = 0
	}
}

func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// closeWriter is a connection that can end its sending side only (TCP, TLS).
type closeWriter interface{ CloseWrite() error }

// relay runs both directions until the backend's side ends (then the
// client's is given a moment to end too) or either side fails. down reads
// the backend through downIR; prefix (the backend's greeting, in implicit
// mode) goes to the client first, through the same filter. It returns the
// bytes moved each way and the reason the session ended ("" for a normal end).
func (s *session) relay(client net.Conn, clientR io.Reader, backend net.Conn, down *bufio.Reader, downIR *idleReader, prefix []byte) (up, dn int64, reason string) {
	l := s.l
	idle := l.cfg.Timeouts.Idle
	act := downIR.act
	act.touch(time.Now())
	downIR.setIdle(idle)
	name := l.cfg.Name
	upR := newIdleReader(clientR, client, idle, act)
	upW := &countWriter{w: backend, conn: backend, idle: idle, act: act, count: func(n int) { s.srv.metrics.Bytes(name, DirUp, n) }}
	downW := &countWriter{w: client, conn: client, idle: idle, act: act, count: func(n int) { s.srv.metrics.Bytes(name, DirDown, n) }}
	if _, ok := client.(*tls.Conn); ok {
		downW.batch = s.batch
	}
	defer upW.flushCount()
	defer downW.flushCount()

	// Inside TLS the proxy answers a repeated upgrade command itself.
	var answer io.Writer
	if _, ok := client.(*tls.Conn); ok && l.app.Up != nil {
		answer = downW
	}
	q := relayq.NewQueue(answer, downW) // out is down's until it stops (the greeting first, in implicit mode)
	upDone := make(chan error, 1)
	go func() {
		var err error
		if l.app.Up != nil {
			br := bufio.NewReaderSize(upR, 16<<10)
			err = l.app.Up(upW, br, q)
		} else {
			err = relayq.CopyPlain(upW, upR)
		}
		if cw, ok := backend.(closeWriter); ok && (err == nil || err == io.EOF) {
			_ = cw.CloseWrite()
		} else {
			_ = backend.Close()
		}
		upDone <- err
	}()

	var downErr error
	if l.app.Down != nil {
		bw := bufio.NewWriterSize(downW, 16<<10)
		if len(prefix) > 0 {
			if err := l.app.Down(bw, bufio.NewReader(bytes.NewReader(prefix)), q); err != io.EOF {
				downErr = err
			}
		}
		if downErr == nil {
			downErr = l.app.Down(bw, down, q)
		}
	} else {
		if _, err := downW.Write(prefix); err != nil {
			downErr = err
		} else {
			downErr = relayq.CopyPlain(downW, down)
		}
	}
	q.Stop() // before waiting for up, which may wait for down
	if downErr == io.EOF {
		downErr = nil
	}
	// The backend is done: end the client's side politely and give its
	// direction a moment to finish.
	if cw, ok := client.(closeWriter); ok && downErr == nil {
		_ = client.SetWriteDeadline(time.Now().Add(time.Second))
		_ = cw.CloseWrite()
	}
	var upErr error
	select {
	case upErr = <-upDone:
	case <-time.After(2 * time.Second):
		_ = client.Close()
		upErr = <-upDone
	}
	_ = client.Close()
	_ = backend.Close()
	if upErr == io.EOF {
		upErr = nil
	}
	switch {
	case errors.Is(upR.err, errIdle) || errors.Is(downIR.err, errIdle):
		reason = ReasonIdle
	case downErr != nil && downIR.err == nil && downW.err == nil:
		reason = ReasonRelayError
	case downIR.err != nil && downIR.err != io.EOF && !errors.Is(downIR.err, net.ErrClosed):
		reason = ReasonRelayError
	}
	return upW.n, downW.n, reason
}
