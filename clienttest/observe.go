package clienttest

import (
	"bytes"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// observation is what the scenario server saw.
type observation struct {
	mu           sync.Mutex
	start        time.Time
	lines        []Line
	connected    bool
	handshake    string
	firstTLSSent time.Time // when the server first wrote inside TLS
}

func (ob *observation) add(tlsOn bool, text string) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.lines = append(ob.lines, Line{AtMS: ms(time.Since(ob.start)), TLS: tlsOn, Text: text})
}

func (ob *observation) addReferred(text string) {
	ob.mu.Lock()
	defer ob.mu.Unlock()
	ob.lines = append(ob.lines, Line{AtMS: ms(time.Since(ob.start)), Text: text, Referred: true})
}

// prefixConn reads bytes already buffered before the connection's own.
type prefixConn struct {
	net.Conn
	r io.Reader
}

func (c *prefixConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// recordingConn notes every line the client sends inside TLS as it
// arrives (a reader goroutine stamps it, whatever the application is
// doing), and the time of the server's first answer, delayed by delayFirst.
type recordingConn struct {
	net.Conn
	ob         *observation
	delayFirst time.Duration
	wrote      bool

	once sync.Once
	mu   sync.Mutex
	cond *sync.Cond
	buf  bytes.Buffer
	err  error
}

// maxQueued bounds what the reader goroutine holds for the application.
const maxQueued = 1 << 20

func (c *recordingConn) start() {
	c.cond = sync.NewCond(&c.mu)
	go func() {
		var partial []byte
		b := make([]byte, 16<<10)
		for {
			n, err := c.Conn.Read(b)
			partial = append(partial, b[:n]...)
			for {
				i := bytes.IndexByte(partial, '\n')
				if i < 0 {
					break
				}
				c.ob.add(true, strings.TrimRight(string(partial[:i]), "\r"))
				partial = partial[i+1:]
			}
			if len(partial) > 64<<10 {
				partial = partial[:0]
			}
			c.mu.Lock()
			if c.buf.Len() < maxQueued {
				c.buf.Write(b[:n])
			}
			if err != nil {
				c.err = err
			}
			c.cond.Broadcast()
			c.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
}

func (c *recordingConn) Read(p []byte) (int, error) {
	c.once.Do(c.start)
	c.mu.Lock()
	defer c.mu.Unlock()
	for c.buf.Len() == 0 && c.err == nil {
		c.cond.Wait()
	}
	if c.buf.Len() > 0 {
		return c.buf.Read(p)
	}
	return 0, c.err
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.once.Do(c.start)
	if !c.wrote {
		c.wrote = true
		time.Sleep(c.delayFirst)
		c.ob.mu.Lock()
		c.ob.firstTLSSent = time.Now()
		c.ob.mu.Unlock()
	}
	return c.Conn.Write(p)
}
