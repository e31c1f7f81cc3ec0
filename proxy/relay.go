package proxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// cmdQueue carries the kinds of the client's commands from the up
// direction to the down direction (POP3 responses depend on the command;
// SMTP replies are counted, one per command line, RFC 5321 §4.2). A
// command is queued before it is written to the backend, so its response
// always finds it.
//
// Inside TLS (client set) the proxy answers a repeated upgrade command
// itself: up waits until the backend has answered every command before
// it, then writes to the client under out, which down holds except while
// it waits for the backend between two responses, everything flushed.
type cmdQueue struct {
	mu      sync.Mutex
	cond    sync.Cond // on mu: a response began (POP3) or ended (SMTP), or down stopped
	kinds   []int
	last    int  // the code of the last complete SMTP reply
	stopped bool // down has returned
	rcpts   int  // LMTP: recipients accepted for the current message (down only)

	client io.Writer // the client's side, when the proxy answers upgrade commands
	out    sync.Mutex
	direct io.Writer // the client's side under down's buffer (nil: always through it)
}

func newCmdQueue(client io.Writer) *cmdQueue {
	q := &cmdQueue{client: client}
	q.cond.L = &q.mu
	return q
}

// maxQueued bounds the commands waiting for responses; beyond it the
// oldest are forgotten (responses then read as single lines).
const maxQueued = 4096

func (q *cmdQueue) push(k int) {
	q.mu.Lock()
	if len(q.kinds) >= maxQueued {
		q.kinds = q.kinds[1:]
	}
	q.kinds = append(q.kinds, k)
	q.mu.Unlock()
}

func (q *cmdQueue) pop() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.cond.Broadcast()
	if len(q.kinds) == 0 {
		return kindSingle
	}
	k := q.kinds[0]
	q.kinds = q.kinds[1:]
	return k
}

// answered ends the oldest command's SMTP reply. LMTP answers a message
// once per accepted recipient (RFC 2033 §4.2).
func (q *cmdQueue) answered(code int) {
	q.mu.Lock()
	q.last = code
	head := kindSingle
	if len(q.kinds) > 0 {
		head = q.kinds[0]
	}
	q.mu.Unlock()
	switch head {
	case kindMail:
		q.rcpts = 0
	case kindRcpt:
		if code/100 == 2 {
			q.rcpts++
		}
	case kindMessage:
		if q.rcpts--; q.rcpts > 0 {
			return
		}
		q.rcpts = 0
	}
	q.pop()
}

// settle waits until every queued command has its response and returns
// the last SMTP reply code; ok is false once down has stopped.
func (q *cmdQueue) settle() (last int, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.kinds) > 0 && !q.stopped {
		q.cond.Wait()
	}
	return q.last, !q.stopped
}

// reply answers the client in the proxy's name, after the backend's
// responses to the commands before (io.EOF once the backend is gone).
func (q *cmdQueue) reply(s string) error {
	if _, ok := q.settle(); !ok {
		return io.EOF
	}
	q.out.Lock()
	defer q.out.Unlock()
	_, err := io.WriteString(q.client, s)
	return err
}

// between is down's pause between two responses: it flushes dst and, when
// the proxy may answer the client itself, lets it while waiting for the
// backend.
func (q *cmdQueue) between(dst *bufio.Writer, src *bufio.Reader) error {
	if err := dst.Flush(); err != nil {
		return err
	}
	if q.client == nil {
		return nil
	}
	q.out.Unlock()
	_, err := src.Peek(1)
	q.out.Lock()
	return err
}

// writeRun sends p, a run of lines that needs no filtering, after what
// dst holds: in one write where that fits, else p straight from the
// caller's buffer (no copy). Either way nothing stays buffered, so a
// TLS record per read reaches the client at once.
func (q *cmdQueue) writeRun(dst *bufio.Writer, p []byte) error {
	if q.direct == nil || (dst.Buffered() > 0 && len(p) <= dst.Available()) {
		_, _ = dst.Write(p)
		return dst.Flush()
	}
	if err := dst.Flush(); err != nil {
		return err
	}
	_, err := q.direct.Write(p)
	return err
}

// stop ends down's turn for good: waiters wake, out is free.
func (q *cmdQueue) stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cond.Broadcast()
	q.out.Unlock()
}

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
}

func (cw *countWriter) Write(p []byte) (int, error) {
	now := time.Now()
	if now.Sub(cw.lastSet) >= refreshEvery(cw.idle) {
		_ = cw.conn.SetWriteDeadline(now.Add(cw.idle))
		cw.lastSet = now
	}
	n, err := cw.w.Write(p)
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

// Relay buffers: a TLS record holds at most 16 KiB.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 16<<10); return &b }}

// copyPlain copies until EOF or an error; EOF is not an error.
func copyPlain(dst io.Writer, src io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	_, err := io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, *bp)
	return err
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
	defer upW.flushCount()
	defer downW.flushCount()

	// Inside TLS the proxy answers a repeated upgrade command itself.
	var answer io.Writer
	if _, ok := client.(*tls.Conn); ok && l.app.up != nil {
		answer = downW
	}
	q := newCmdQueue(answer)
	q.direct = downW
	q.out.Lock() // down's until it stops (the greeting first, in implicit mode)
	upDone := make(chan error, 1)
	go func() {
		var err error
		if l.app.up != nil {
			br := bufio.NewReaderSize(upR, 16<<10)
			err = l.app.up(upW, br, q)
		} else {
			err = copyPlain(upW, upR)
		}
		if cw, ok := backend.(closeWriter); ok && (err == nil || err == io.EOF) {
			_ = cw.CloseWrite()
		} else {
			_ = backend.Close()
		}
		upDone <- err
	}()

	var downErr error
	if l.app.down != nil {
		bw := bufio.NewWriterSize(downW, 16<<10)
		if len(prefix) > 0 {
			if err := l.app.down(bw, bufio.NewReader(bytes.NewReader(prefix)), q); err != io.EOF {
				downErr = err
			}
		}
		if downErr == nil {
			downErr = l.app.down(bw, down, q)
		}
	} else {
		if _, err := downW.Write(prefix); err != nil {
			downErr = err
		} else {
			downErr = copyPlain(downW, down)
		}
	}
	q.stop() // before waiting for up, which may wait for down
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
