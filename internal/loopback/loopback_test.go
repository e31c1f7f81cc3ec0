package loopback

import (
	"io"
	"net"
	"testing"
	"time"
)

// Each connection gets the handler; the deadline ends a stalled one.
func TestServe(t *testing.T) {
	addr := Serve(t, 200*time.Millisecond, func(c net.Conn) {
		_, _ = c.Write([]byte("hi"))
		_, _ = c.Read(make([]byte, 1)) // stalls until the deadline
	})
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "hi" {
			t.Fatalf("read %q, %v", b, err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("connection lived %v past a 200 ms deadline", d)
		}
	}
}
