package serve

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
)

// httpApp serves one connection with net/http: a page saying the
// request came over TLS.
func httpApp(ctx context.Context, s *session) {
	l := &oneConnListener{c: &bufferedConn{Conn: s.c, r: s.br}, done: make(chan struct{})}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "Hello from starttls serve: %s %s over TLS=%v\n", r.Method, r.URL.Path, s.secure())
		}),
		ReadHeaderTimeout: s.o.IdleTimeout,
		IdleTimeout:       s.o.IdleTimeout,
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateClosed || st == http.StateHijacked {
				l.finish()
			}
		},
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-l.done:
		}
		srv.Close()
	}()
	_ = srv.Serve(l)
	<-l.done
}

// oneConnListener hands out one connection, then blocks until it closes.
type oneConnListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
	fin  sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *oneConnListener) finish()        { l.fin.Do(func() { close(l.done) }) }
func (l *oneConnListener) Close() error   { l.finish(); return nil }
func (l *oneConnListener) Addr() net.Addr { return l.c.LocalAddr() }
