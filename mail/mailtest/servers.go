package mailtest

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/serve"
)

// startSMTP starts the MX hosts on one port common to all their
// addresses (the mail check has a single --smtp-port), retrying with
// another port when one address has it taken.
func (e *Env) startSMTP(t testing.TB, ctx context.Context, wrong *certs.Leaf) {
	t.Helper()
	hosts := []struct {
		ip   string
		leaf *certs.Leaf
	}{{GoodMX1, e.MXLeaf}, {GoodMX2, e.MX2Leaf}, {BadCertMX, wrong}}
	var lastErr error
	for attempt := 0; attempt < 10; attempt++ {
		port := peer.FreePort(t)
		var started []*serve.Server
		var fwd, rtls net.Listener
		err := func() error {
			for _, h := range hosts {
				s, err := serve.Start(ctx, serve.Options{
					Protocol: starttls.SMTP, Listen: net.JoinHostPort(h.ip, strconv.Itoa(port)),
					TLSConfig: &tls.Config{Certificates: []tls.Certificate{h.leaf.TLS}},
					Policy:    starttls.Optional, Hostname: "mx.mail.test", IdleTimeout: 30 * time.Second,
				})
				if err != nil {
					return err
				}
				started = append(started, s)
			}
			l, err := net.Listen("tcp", net.JoinHostPort(NoTLSMX, strconv.Itoa(port)))
			if err != nil {
				return err
			}
			fwd = l
			if rtls, err = net.Listen("tcp", net.JoinHostPort(RequireTLSMX, strconv.Itoa(port))); err != nil {
				fwd.Close()
				return err
			}
			return nil
		}()
		if err != nil {
			lastErr = err
			for _, s := range started {
				_ = s.Close()
			}
			continue
		}
		e.SMTPPort = port
		t.Cleanup(func() {
			for _, s := range started {
				_ = s.Close()
			}
		})
		forward(t, fwd, e.Postfix.SMTPAddr)
		serveRequireTLS(t, ctx, rtls, e.MXLeaf)
		return
	}
	t.Fatalf("no common SMTP port on the MX addresses: %v", lastErr)
}

// serveRequireTLS answers SMTP on l: the library's server half does the
// dialogue up to TLS (so the check's pre-TLS probes meet a real
// implementation), then a small loop whose EHLO advertises REQUIRETLS.
func serveRequireTLS(t testing.TB, ctx context.Context, l net.Listener, leaf *certs.Leaf) {
	ctx, cancel := context.WithCancel(ctx)
	cfg := &starttls.ServerConfig{TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}},
		Policy: starttls.Required, Hostname: "mx.requiretls.mail.test", PhaseTimeout: 10 * time.Second}
	t.Cleanup(cancel)
	// The deadline bounds the whole session, also a client that never speaks.
	loopback.ServeListener(t, l, 30*time.Second, func(raw net.Conn) {
		c, err := starttls.Accept(ctx, raw, starttls.SMTP, cfg)
		if err != nil {
			return
		}
		defer c.Close()
		for i := 0; i < 100; i++ {
			line, err := c.ReadLine()
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(line, " ")
			reply := "502 5.5.2 not implemented here"
			switch strings.ToUpper(verb) {
			case "EHLO":
				reply = "250-" + cfg.Hostname + "\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250 REQUIRETLS"
			case "HELO", "NOOP", "RSET":
				reply = "250 2.0.0 ok"
			case "QUIT":
				_, _ = io.WriteString(c, "221 2.0.0 bye\r\n")
				return
			}
			if _, err := io.WriteString(c, reply+"\r\n"); err != nil {
				return
			}
		}
	})
}

// forward relays each connection on l to target until cleanup.
func forward(t testing.TB, l net.Listener, target string) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	track := func(c net.Conn, on bool) {
		mu.Lock()
		defer mu.Unlock()
		if on {
			conns[c] = true
		} else {
			delete(conns, c)
		}
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			track(in, true)
			track(out, true)
			wg.Add(2)
			pipe := func(dst, src net.Conn) {
				defer wg.Done()
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
				track(dst, false)
				track(src, false)
			}
			go pipe(out, in)
			go pipe(in, out)
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
}

// startHTTPS serves the policies on PolicyIP.
func (e *Env) startHTTPS(t testing.TB, leaf *certs.Leaf, policies map[string]policy) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(PolicyIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	e.HTTPSPort = l.Addr().(*net.TCPAddr).Port
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/mta-sts.txt", func(w http.ResponseWriter, r *http.Request) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		p, ok := policies[strings.ToLower(host)]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if p.location != "" {
			w.Header().Set("Location", p.location)
		}
		if p.contentType != "" {
			w.Header().Set("Content-Type", p.contentType)
		}
		w.WriteHeader(p.status)
		_, _ = io.WriteString(w, p.body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}}
	done := make(chan error, 1)
	go func() { done <- srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Logf("policy server: %v", err)
		}
	})
}
