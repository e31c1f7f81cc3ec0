package relayq

import (
	"bufio"
	"io"
	"sync"
)

// Command kinds, for reading the matching response.
const (
	KindSingle = iota
	KindMulti  // POP3: +OK is followed by lines up to "."
	KindCapa   // as KindMulti; STLS is removed
	// LMTP (counted replies): a message has one per accepted recipient.
	KindMail
	KindRcpt
	KindMessage
)

// Queue carries the kinds of the client's commands from the up
// direction to the down direction (POP3 responses depend on the command;
// SMTP replies are counted, one per command line, RFC 5321 §4.2). A
// command is queued before it is written to the backend, so its response
// always finds it.
//
// Inside TLS (client set) the proxy answers a repeated upgrade command
// itself: up waits until the backend has answered every command before
// it, then writes to the client under out, which down holds except while
// it waits for the backend between two responses, everything flushed.
type Queue struct {
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

// NewQueue returns a queue whose down direction holds the client's side
// (out) from the start until Stop. client is where the proxy answers
// upgrade commands itself (nil: it does not); direct is the client's side
// under down's buffer, for WriteRun (nil: always through the buffer).
func NewQueue(client, direct io.Writer) *Queue {
	q := &Queue{client: client, direct: direct}
	q.cond.L = &q.mu
	q.out.Lock()
	return q
}

// Answers reports whether the proxy answers repeated upgrade commands
// itself (inside TLS), so the up filter reads commands instead of copying.
func (q *Queue) Answers() bool { return q.client != nil }

// maxQueued bounds the commands waiting for responses; beyond it the
// oldest are forgotten (responses then read as single lines).
const maxQueued = 4096

// Push queues a command of kind k.
func (q *Queue) Push(k int) {
	q.mu.Lock()
	if len(q.kinds) >= maxQueued {
		q.kinds = q.kinds[1:]
	}
	q.kinds = append(q.kinds, k)
	q.mu.Unlock()
}

// Pop takes the oldest command's kind as its response begins (KindSingle
// when none is queued).
func (q *Queue) Pop() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	defer q.cond.Broadcast()
	if len(q.kinds) == 0 {
		return KindSingle
	}
	k := q.kinds[0]
	q.kinds = q.kinds[1:]
	return k
}

// Answered ends the oldest command's SMTP reply. LMTP answers a message
// once per accepted recipient (RFC 2033 §4.2).
func (q *Queue) Answered(code int) {
	q.mu.Lock()
	q.last = code
	head := KindSingle
	if len(q.kinds) > 0 {
		head = q.kinds[0]
	}
	q.mu.Unlock()
	switch head {
	case KindMail:
		q.rcpts = 0
	case KindRcpt:
		if code/100 == 2 {
			q.rcpts++
		}
	case KindMessage:
		if q.rcpts--; q.rcpts > 0 {
			return
		}
		q.rcpts = 0
	}
	q.Pop()
}

// Last is the code of the last complete SMTP reply.
func (q *Queue) Last() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.last
}

// Pending is the number of queued commands without a response yet.
func (q *Queue) Pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.kinds)
}

// Settle waits until every queued command has its response and returns
// the last SMTP reply code; ok is false once down has stopped.
func (q *Queue) Settle() (last int, ok bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for len(q.kinds) > 0 && !q.stopped {
		q.cond.Wait()
	}
	return q.last, !q.stopped
}

// Reply answers the client in the proxy's name, after the backend's
// responses to the commands before (io.EOF once the backend is gone).
func (q *Queue) Reply(s string) error {
	if _, ok := q.Settle(); !ok {
		return io.EOF
	}
	q.out.Lock()
	defer q.out.Unlock()
	_, err := io.WriteString(q.client, s)
	return err
}

// Between is down's pause between two responses: it flushes dst and, when
// the proxy may answer the client itself, lets it while waiting for the
// backend.
func (q *Queue) Between(dst *bufio.Writer, src *bufio.Reader) error {
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

// WriteRun sends p, a run of lines that needs no filtering, after what
// dst holds: in one write where that fits, else p straight from the
// caller's buffer (no copy). Either way nothing stays buffered, so a
// TLS record per read reaches the client at once.
func (q *Queue) WriteRun(dst *bufio.Writer, p []byte) error {
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

// Stop ends down's turn for good: waiters wake, out is free.
func (q *Queue) Stop() {
	q.mu.Lock()
	q.stopped = true
	q.mu.Unlock()
	q.cond.Broadcast()
	q.out.Unlock()
}
