package scantest

import (
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// delayListener puts a delay line in front of each accepted connection.
type delayListener struct {
	net.Listener
	rtt   time.Duration
	trace *traceLog // nil: no tracing
}

// tracer is the trace StartTraced hands to the listeners it makes.
var tracer *traceLog

// traceLog writes the timelines of the first connections.
type traceLog struct {
	mu   sync.Mutex
	w    io.Writer
	left int
	n    int
}

// conn returns a timeline for a new connection, nil once enough are traced.
func (t *traceLog) conn(rtt time.Duration) *timeline {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.left <= 0 {
		return nil
	}
	t.left--
	t.n++
	return &timeline{log: t, id: t.n, start: time.Now(), rtt: rtt}
}

// timeline is one connection's events, written out when it closes.
type timeline struct {
	log    *traceLog
	id     int
	start  time.Time
	mu     sync.Mutex
	events []string
	rtt    time.Duration
	last   byte // 'r' after a read, 'w' after a write
	trips  int  // server writes answered by a client read: round trips the client waited
	// lastRead is when the last client bytes arrived; counted, whether
	// they began a round trip.
	lastRead time.Time
	counted  bool
}

func (tl *timeline) add(kind byte, b []byte) {
	if tl == nil {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	switch kind {
	case 'r':
		if tl.last != 'r' { // the first chunk of a burst decides
			tl.counted = tl.last == 'w'
			if tl.counted {
				tl.trips++
			}
		}
		tl.lastRead = time.Now()
	case 'e':
		// A close right behind the last command: the client did not
		// wait for that command's answer, so it was no round trip.
		if tl.last == 'r' && tl.counted && time.Since(tl.lastRead) < tl.rtt/2 {
			tl.trips--
		}
	}
	tl.last = kind
	what := "client bytes arrive"
	if kind == 'w' {
		what = "server writes"
	}
	if kind == 'e' {
		what = "client closed"
	}
	tl.events = append(tl.events, fmt.Sprintf("%8.1f ms  %-19s %4d B  %s", float64(time.Since(tl.start).Microseconds())/1000, what, len(b), describe(b)))
}

func (tl *timeline) flush() {
	if tl == nil {
		return
	}
	tl.log.mu.Lock()
	defer tl.log.mu.Unlock()
	tl.mu.Lock()
	defer tl.mu.Unlock()
	fmt.Fprintf(tl.log.w, "connection %d (accept at 0; a client read after a server write is a round trip it waited for)\n", tl.id)
	for _, e := range tl.events {
		fmt.Fprintln(tl.log.w, e)
	}
	// +1: the greeting, sent one rtt after the accept.
	fmt.Fprintf(tl.log.w, "round trips the client waited after its connect: %d\n\n", tl.trips+1)
}

// describe shows a chunk: its text lines, or a TLS record's type.
func describe(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if b[0] >= 0x14 && b[0] <= 0x17 && len(b) >= 5 {
		var recs []string
		for len(b) >= 5 && b[0] >= 0x14 && b[0] <= 0x17 {
			n := int(b[3])<<8 | int(b[4])
			name := map[byte]string{0x14: "ChangeCipherSpec", 0x15: "Alert", 0x16: "Handshake", 0x17: "ApplicationData"}[b[0]]
			if b[0] == 0x16 && len(b) > 5 {
				name += fmt.Sprintf("(type %d)", b[5])
			}
			recs = append(recs, name)
			if len(b) < 5+n {
				break
			}
			b = b[5+n:]
		}
		return "TLS " + strings.Join(recs, " ")
	}
	return strings.ReplaceAll(strings.TrimRight(string(b), "\r\n"), "\r\n", " | ")
}

func (l delayListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newDelayConn(c, l.rtt, l.trace.conn(l.rtt)), nil
}

// delayConn emulates a round-trip time on a loopback connection, as tc
// netem would on a kernel that has it (this one has no sch_netem): every
// byte the client sends reaches the server rtt after it was sent, and the
// server's writes go out at once. So a client waits one rtt per exchange
// it waits on, and commands it pipelines share one rtt, as on a real
// path. The greeting, the server's first write, goes out rtt after the
// accept: the client sees it one rtt after its connect returns, as it
// would after the ACK crossed. What is not emulated is the rtt the TCP
// handshake itself would take; it is the same for every client.
type delayConn struct {
	net.Conn
	rtt    time.Duration
	in     chan chunk
	mu     sync.Mutex // one Read at a time
	buf    []byte     // the part of a chunk not read yet
	greet  sync.Once
	dlMu   sync.Mutex
	dl     time.Time
	closed chan struct{}
	once   sync.Once
	tl     *timeline
}

type chunk struct {
	b   []byte
	at  time.Time // when it may be read
	err error
}

func newDelayConn(c net.Conn, rtt time.Duration, tl *timeline) *delayConn {
	d := &delayConn{Conn: c, rtt: rtt, in: make(chan chunk, 64), closed: make(chan struct{}), tl: tl}
	go d.pump()
	return d
}

// pump reads the client's bytes as they arrive and stamps each chunk
// with its delivery time.
func (d *delayConn) pump() {
	for {
		b := make([]byte, 16<<10)
		n, err := d.Conn.Read(b)
		if n > 0 {
			d.tl.add('r', b[:n])
		} else if err != nil {
			d.tl.add('e', nil)
		}
		select {
		case d.in <- chunk{b: b[:n], at: time.Now().Add(d.rtt), err: err}:
		case <-d.closed:
			return
		}
		if err != nil {
			return
		}
	}
}

func (d *delayConn) Read(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.buf) == 0 {
		d.dlMu.Lock()
		dl := d.dl
		d.dlMu.Unlock()
		var expire <-chan time.Time
		if !dl.IsZero() {
			wait := time.Until(dl)
			if wait <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			t := time.NewTimer(wait)
			defer t.Stop()
			expire = t.C
		}
		var c chunk
		select {
		case c = <-d.in:
		case <-expire:
			return 0, os.ErrDeadlineExceeded
		case <-d.closed:
			return 0, net.ErrClosed
		}
		if wait := time.Until(c.at); wait > 0 {
			time.Sleep(wait)
		}
		if len(c.b) == 0 && c.err != nil {
			d.in <- c // every later Read sees the error too
			return 0, c.err
		}
		d.buf = c.b
		if c.err != nil {
			// Deliver the bytes now, the error on the next Read.
			go func() {
				select {
				case d.in <- chunk{at: c.at, err: c.err}:
				case <-d.closed:
				}
			}()
		}
	}
	n := copy(p, d.buf)
	d.buf = d.buf[n:]
	return n, nil
}

func (d *delayConn) Write(p []byte) (int, error) {
	d.greet.Do(func() { time.Sleep(d.rtt) })
	d.tl.add('w', p)
	return d.Conn.Write(p)
}

func (d *delayConn) SetDeadline(t time.Time) error {
	d.setReadDeadline(t)
	return d.Conn.SetWriteDeadline(t)
}

func (d *delayConn) SetReadDeadline(t time.Time) error {
	d.setReadDeadline(t)
	return nil
}

func (d *delayConn) setReadDeadline(t time.Time) {
	d.dlMu.Lock()
	d.dl = t
	d.dlMu.Unlock()
}

func (d *delayConn) Close() error {
	d.once.Do(func() {
		close(d.closed)
		go func() { // the client's last bytes may still be arriving
			time.Sleep(100 * time.Millisecond)
			d.tl.flush()
		}()
	})
	return d.Conn.Close()
}
