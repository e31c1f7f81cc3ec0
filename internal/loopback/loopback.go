// Package loopback starts throwaway TCP servers on 127.0.0.1 for tests:
// hand-written peers that stall, lie or send garbage, which no real daemon
// can be made to do.
package loopback

import (
	"net"
	"sync"
	"testing"
	"time"
)

// Serve listens on 127.0.0.1, runs handle on every accepted connection in
// its own goroutine with deadline set on the connection (so that no fake
// outlives its test), and closes each connection after handle returns.
// When the test ends it closes the listener and every open connection and
// waits for the handlers. It returns the listening address.
func Serve(t testing.TB, deadline time.Duration, handle func(net.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ServeListener(t, l, deadline, handle)
	return l.Addr().String()
}

// ServeListener is Serve on a listener of the caller's (an address of its
// choosing); it owns l and closes it when the test ends.
func ServeListener(t testing.TB, l net.Listener, deadline time.Duration, handle func(net.Conn)) {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		open = map[net.Conn]bool{}
	)
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open[c] = true
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					c.Close()
					mu.Lock()
					delete(open, c)
					mu.Unlock()
				}()
				_ = c.SetDeadline(time.Now().Add(deadline))
				handle(c)
			}()
		}
	}()
}

// UnusedAddr returns an address on 127.0.0.1 that nothing listens on: a
// connection to it is refused, and a test may listen on it later (another
// process could take the port first, which loopback tests accept).
func UnusedAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
