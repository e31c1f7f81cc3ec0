// Package loopback starts throwaway TCP servers on 127.0.0.1 for tests:
// hand-written peers that stall, lie or send garbage, which no real daemon
// can be made to do.
package loopback

import (
	"net"
	"testing"
	"time"
)

// Serve listens on 127.0.0.1, runs handle on every accepted connection in
// its own goroutine with deadline set on the connection (so that no fake
// outlives its test), closes each connection after handle returns and the
// listener when the test ends. It returns the listening address.
func Serve(t testing.TB, deadline time.Duration, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(deadline))
				handle(c)
			}()
		}
	}()
	return l.Addr().String()
}
