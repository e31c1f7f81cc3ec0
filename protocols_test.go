package starttls_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// postTLSApp is a minimal application behind our server for one protocol:
// the greeting it sends on implicit-TLS ports and its answers to the
// commands the client half sends inside TLS.
type postTLSApp struct {
	greeting string
	answers  map[string]string // command prefix → reply
}

var postTLSApps = map[starttls.Protocol]postTLSApp{
	starttls.FTP: {greeting: "220 ftps ready\r\n", answers: map[string]string{
		"PBSZ": "200 PBSZ=0\r\n", "PROT": "200 PROT now Private\r\n", "FEAT": "211-Features:\r\n PBSZ\r\n PROT\r\n UTF8\r\n211 End\r\n", "QUIT": "221 bye\r\n"}},
	starttls.NNTP: {greeting: "200 nntps ready\r\n", answers: map[string]string{
		"CAPABILITIES": "101 caps\r\nVERSION 2\r\nREADER\r\nAUTHINFO USER\r\n.\r\n", "QUIT": "205 bye\r\n"}},
	starttls.IRC: {answers: map[string]string{"CAP LS": ":localhost CAP * LS :sasl multi-prefix\r\n",
		"PING": ":localhost PONG localhost :starttls-caps-end\r\n"}},
	starttls.Sieve: {answers: map[string]string{"LOGOUT": "OK \"bye\"\r\n"}},
	starttls.HTTP:  {},
}

func (a postTLSApp) serve(t *testing.T, c *starttls.Conn) {
	if c.Implicit && a.greeting != "" {
		if _, err := c.Write([]byte(a.greeting)); err != nil {
			t.Error(err)
			return
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for i := 0; i < 10; i++ {
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		for prefix, reply := range a.answers {
			if strings.HasPrefix(strings.ToUpper(line), prefix) {
				if _, err := c.Write([]byte(reply)); err != nil {
					return
				}
			}
		}
	}
}

// Every protocol of this file set, our client against our server, both
// the STARTTLS and the implicit port.
func TestRoundTripMoreProtocols(t *testing.T) {
	pki := newPKI(t)
	protos := []starttls.Protocol{starttls.FTP, starttls.FTPS, starttls.NNTP, starttls.NNTPS, starttls.Sieve,
		starttls.IRC, starttls.IRCS, starttls.HTTP, starttls.HTTPS}
	for _, p := range protos {
		t.Run(string(p), func(t *testing.T) {
			info, err := starttls.Lookup(p)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			done := make(chan error, 1)
			addr := acceptOnLoopback(t, ctx, p, &starttls.ServerConfig{TLSConfig: pki.Server, Capabilities: []string{"SASL PLAIN"}}, func(c *starttls.Conn, err error) {
				done <- err
				if err != nil {
					return
				}
				defer c.Close()
				postTLSApps[info.Base].serve(t, c)
			})
			c, err := starttls.Dial(ctx, p, addr, &starttls.Config{TLSConfig: pki.Client})
			if err != nil {
				t.Fatalf("dial: %v", err)
			}
			if err := <-done; err != nil {
				t.Fatalf("server: %v", err)
			}
			if !c.Upgraded() || c.ConnectionState().Version < tls.VersionTLS12 {
				t.Fatalf("not upgraded")
			}
			if !info.Implicit && p != starttls.HTTP && len(c.CapabilitiesBefore) == 0 {
				t.Errorf("no capabilities learned before TLS")
			}
			if p == starttls.Sieve && !c.Capabilities.Has("SASL") {
				t.Errorf("sieve capabilities re-sent inside TLS lack SASL: %q", c.Capabilities)
			}
			if err := c.Quit(ctx); err != nil && p != starttls.IRC && p != starttls.IRCS {
				t.Errorf("quit: %v", err)
			}
		})
	}
}

// HTTP's upgrade is a request with headers, so its server side gets its
// own invariant tests: injection after the upgrade request, 426 under
// Required, plaintext handoff of the whole request under Optional.
func TestServerHTTPUpgrade(t *testing.T) {
	pki := newPKI(t)
	const upgrade = "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n"
	t.Run("injection", func(t *testing.T) {
		p, res := acceptOne(t, starttls.HTTP, serverCfg(pki))
		p.send(upgrade + "GET /secret HTTP/1.1\r\nHost: localhost\r\n\r\n")
		if rest := p.rest(); rest != "" {
			t.Errorf("server answered %q", rest)
		}
		a := wait(t, res)
		wantErr(t, a.err, starttls.ErrInjection, "injection")
		if len(a.events) != 1 {
			t.Errorf("events %+v", a.events)
		}
	})
	t.Run("required-426", func(t *testing.T) {
		p, res := acceptOne(t, starttls.HTTP, serverCfg(pki))
		p.send("GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
		p.expect("HTTP/1.1 426 ")
		p.readUntil("TLS upgrade required")
		p.send(upgrade)
		p.expect("HTTP/1.1 101 ")
		p.conn.Close()
		wait(t, res)
	})
	t.Run("optional-handoff", func(t *testing.T) {
		cfg := serverCfg(pki)
		cfg.Policy = starttls.Optional
		p, res := acceptOne(t, starttls.HTTP, cfg)
		p.send("GET /plain HTTP/1.1\r\nHost: localhost\r\n\r\n")
		a := wait(t, res)
		if a.err != nil || a.conn.Upgraded() {
			t.Fatalf("err %v upgraded %v", a.err, a.conn != nil && a.conn.Upgraded())
		}
		for _, want := range []string{"GET /plain HTTP/1.1", "Host: localhost", ""} {
			if l, err := a.conn.ReadLine(); err != nil || l != want {
				t.Errorf("application read %q, %v; want %q", l, err, want)
			}
		}
	})
	t.Run("upgrade-with-body", func(t *testing.T) {
		p, res := acceptOne(t, starttls.HTTP, serverCfg(pki))
		p.send("OPTIONS * HTTP/1.1\r\nHost: x\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\nContent-Length: 5\r\n\r\n")
		p.expect("HTTP/1.1 400 ")
		wantErr(t, wait(t, res).err, starttls.ErrProtocol, "body")
	})
}

// The HTTP server half as a net.Listener for net/http: the RFC 2817
// upgrade is done by the listener, and the handler serves the request the
// client sends inside TLS.
func TestHTTPUpgradeListenerWithNetHTTP(t *testing.T) {
	pki := newPKI(t)
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l, err := starttls.NewListener(inner, starttls.HTTP, &starttls.ServerConfig{TLSConfig: pki.Server}, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "tls=%v path=%s", r.TLS != nil, r.URL.Path)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, starttls.HTTP, inner.Addr().String(), &starttls.Config{TLSConfig: pki.Client})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /inside HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), "tls=true path=/inside") {
		t.Errorf("status %d body %q", resp.StatusCode, body)
	}
}
