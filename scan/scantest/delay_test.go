package scantest

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The delay line hands the server the client's bytes intact, in order,
// and not before rtt has passed since they were sent; the greeting waits
// rtt; a read deadline still ends a read; the client's close reaches the
// server as EOF.
func TestDelayLine(t *testing.T) {
	const rtt = 30 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dl := delayListener{ln, rtt, nil}
	type result struct {
		got      []byte
		firstAt  time.Duration
		deadline error
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		c, err := dl.Accept()
		if err != nil {
			r.err = err
			done <- r
			return
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Millisecond))
		_, r.deadline = c.Read(make([]byte, 1)) // nothing sent yet
		_ = c.SetReadDeadline(time.Time{})
		if _, err := c.Write([]byte("220 hi\r\n")); err != nil {
			r.err = err
			done <- r
			return
		}
		start := time.Now()
		buf := make([]byte, 3)
		for {
			n, err := c.Read(buf)
			if n > 0 && r.got == nil {
				r.firstAt = time.Since(start)
			}
			r.got = append(r.got, buf[:n]...)
			if err == io.EOF {
				break
			}
			if err != nil {
				r.err = err
				break
			}
		}
		done <- r
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	dialed := time.Now()
	greet := make([]byte, 8)
	if _, err := io.ReadFull(c, greet); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(dialed); d < rtt {
		t.Errorf("greeting after %s, before one rtt (%s)", d, rtt)
	}
	want := strings.Repeat("EHLO x\r\nSTARTTLS\r\n", 100)
	for i := 0; i < len(want); i += 500 {
		if _, err := c.Write([]byte(want[i:min(i+500, len(want))])); err != nil {
			t.Fatal(err)
		}
	}
	c.Close()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !errors.Is(r.deadline, os.ErrDeadlineExceeded) {
		t.Errorf("read past its deadline: %v, want os.ErrDeadlineExceeded", r.deadline)
	}
	if !bytes.Equal(r.got, []byte(want)) {
		t.Errorf("server got %d bytes, want the %d sent, in order", len(r.got), len(want))
	}
	if r.firstAt < rtt-5*time.Millisecond { // measured from the greeting's write, a little after the client sent
		t.Errorf("first bytes after %s, before one rtt (%s)", r.firstAt, rtt)
	}
}
