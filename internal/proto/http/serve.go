package http

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// serveApp serves one connection with net/http: a page saying the
// request came over TLS.
func serveApp(ctx context.Context, s registry.ServeConn) {
	// Conn reads through the session's buffer, so nothing already read
	// by the upgrade is lost.
	l := &serveListener{c: s.Conn(), done: make(chan struct{})}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			fmt.Fprintf(w, "Hello from starttls serve: %s %s over TLS=%v\n", r.Method, r.URL.Path, s.Secure())
		}),
		ReadHeaderTimeout: s.IdleTimeout(),
		IdleTimeout:       s.IdleTimeout(),
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

// serveListener hands out one connection, then blocks until it closes.
type serveListener struct {
	c    net.Conn
	once sync.Once
	done chan struct{}
	fin  sync.Once
}

func (l *serveListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.c })
	if c != nil {
		return c, nil
	}
	<-l.done
	return nil, net.ErrClosed
}

func (l *serveListener) finish()        { l.fin.Do(func() { close(l.done) }) }
func (l *serveListener) Close() error   { l.finish(); return nil }
func (l *serveListener) Addr() net.Addr { return l.c.LocalAddr() }
