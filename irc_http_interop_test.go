package starttls_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// Our IRC and HTTP client halves against real daemons: InspIRCd (IRCv3
// tls: CAP LS 302, STARTTLS → 670) and cupsd (RFC 2817: OPTIONS * with
// Upgrade: TLS/1.0 → 101, then the answer to OPTIONS inside TLS).
// Verification is on throughout.

// checkVerifiedTLS fails unless c is TLS >= 1.2 with a verified chain.
func checkVerifiedTLS(t *testing.T, c *starttls.Conn) {
	t.Helper()
	st := c.ConnectionState()
	if !c.Upgraded() || !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
		t.Fatalf("not upgraded to TLS >= 1.2: upgraded=%v %+v", c.Upgraded(), st)
	}
	if len(st.VerifiedChains) == 0 {
		t.Fatal("chain not verified")
	}
}

// sentInPlaintext is every line our side wrote before TLS.
func sentInPlaintext(c *starttls.Conn) []string {
	var out []string
	for _, e := range c.Transcript {
		if e.Sent && !e.TLS {
			out = append(out, e.Text)
		}
	}
	return out
}

// recordingConn keeps a copy of everything written to the connection.
type recordingConn struct {
	net.Conn
	mu      sync.Mutex
	written bytes.Buffer
}

func (r *recordingConn) Write(p []byte) (int, error) {
	r.mu.Lock()
	r.written.Write(p)
	r.mu.Unlock()
	return r.Conn.Write(p)
}

func (r *recordingConn) Written() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.written.String()
}

// ircLinesHaveCommand reports whether any of the (CRLF-separated) lines is
// the IRC command cmd.
func ircLinesHaveCommand(text, cmd string) bool {
	for _, l := range strings.Split(text, "\n") {
		f := strings.Fields(l)
		if len(f) > 0 && strings.EqualFold(f[0], cmd) {
			return true
		}
	}
	return false
}

// ircReadUntil reads lines inside the session until one has the numeric
// or command want (PINGs are answered); it fails on ERROR or the deadline.
func ircReadUntil(t *testing.T, c *starttls.Conn, want string, log func() string) []string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	var seen []string
	for i := 0; i < 200; i++ {
		l, err := c.ReadLine()
		if err != nil {
			t.Fatalf("waiting for %s: %v\nread so far: %q\nserver log:\n%s", want, err, seen, log())
		}
		seen = append(seen, l)
		f := strings.Fields(l)
		if len(f) > 0 && strings.HasPrefix(f[0], ":") {
			f = f[1:]
		}
		if len(f) == 0 {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case want:
			return seen
		case "PING":
			if _, err := io.WriteString(c, "PONG "+strings.Join(f[1:], " ")+"\r\n"); err != nil {
				t.Fatal(err)
			}
		case "ERROR":
			t.Fatalf("server closed the link waiting for %s: %q\nserver log:\n%s", want, l, log())
		}
	}
	t.Fatalf("no %s within 200 lines: %q", want, seen)
	return nil
}

func ircWrite(t *testing.T, c *starttls.Conn, lines ...string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	defer c.SetWriteDeadline(time.Time{})
	if _, err := io.WriteString(c, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		t.Fatal(err)
	}
}

func dialIRC(t *testing.T, d *peer.InspIRCd, serverName string, phase time.Duration) (*starttls.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return starttls.Dial(ctx, starttls.IRC, d.Addr, &starttls.Config{
		TLSConfig:    &tls.Config{RootCAs: d.CA.Pool(), ServerName: serverName},
		PhaseTimeout: phase,
	})
}

func quitLater(t *testing.T, c *starttls.Conn) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = c.Quit(ctx)
	})
}

func TestIRCInteropInspIRCd(t *testing.T) {
	d := peer.StartInspIRCd(t, peer.InspIRCdOptions{})
	t.Logf("InspIRCd %s", d.Version)

	for _, name := range []string{d.ServerName, ""} { // "": verified against the IP address
		label := "name " + name
		if name == "" {
			label = "IP address"
		}
		t.Run(label, func(t *testing.T) {
			c, err := dialIRC(t, d, name, 0)
			if err != nil {
				t.Fatalf("%v\nserver log:\n%s", err, d.Log())
			}
			quitLater(t, c)
			checkVerifiedTLS(t, c)
			if !c.CapabilitiesBefore.Has("tls") {
				t.Errorf("pre-TLS CAP LS lacks tls: %q", c.CapabilitiesBefore)
			}
			if c.Capabilities == nil {
				t.Errorf("no CAP LS answer inside TLS")
			}
			t.Logf("CAP LS before TLS %q, inside TLS %q", c.CapabilitiesBefore, c.Capabilities)
			for _, l := range sentInPlaintext(c) {
				if ircLinesHaveCommand(l, "NICK") || ircLinesHaveCommand(l, "USER") || ircLinesHaveCommand(l, "PASS") {
					t.Errorf("registration sent in plaintext: %q", l)
				}
			}

			// Register inside TLS. CAP LS suspended registration (IRCv3):
			// CAP END lets it complete.
			nick := "tls" + strings.ReplaceAll(strings.ToLower(label), " ", "")[:6]
			ircWrite(t, c, "CAP END", "NICK "+nick, "USER "+nick+" 0 * :starttls interop")
			ircReadUntil(t, c, "001", d.Log)
			// The server's own view: WHOIS says the session is TLS (671).
			ircWrite(t, c, "WHOIS "+nick)
			lines := ircReadUntil(t, c, "318", d.Log)
			secure := false
			for _, l := range lines {
				if f := strings.Fields(l); len(f) > 1 && f[1] == "671" {
					secure = true
				}
			}
			if !secure {
				t.Errorf("WHOIS inside TLS lacks 671 (secure connection): %q", lines)
			}
		})
	}

	t.Run("implicit ircs", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := starttls.Dial(ctx, starttls.IRCS, d.TLSAddr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: d.CA.Pool(), ServerName: d.ServerName}})
		if err != nil {
			t.Fatalf("%v\nserver log:\n%s", err, d.Log())
		}
		quitLater(t, c)
		checkVerifiedTLS(t, c)
		if !c.Implicit || c.Capabilities == nil {
			t.Errorf("implicit=%v, CAP LS inside TLS %q", c.Implicit, c.Capabilities)
		}
		t.Logf("CAP LS on the TLS port %q", c.Capabilities)
		ircWrite(t, c, "CAP END", "NICK tlsimplicit", "USER tlsimplicit 0 * :starttls interop")
		ircReadUntil(t, c, "001", d.Log)
	})

	t.Run("wrong name", func(t *testing.T) {
		_, err := dialIRC(t, d, "other.test", 0)
		if !errors.Is(err, starttls.ErrCertificate) {
			t.Errorf("want a certificate error, got %v", err)
		}
	})
}

// TestIRCInteropInspIRCdNoStartTLS: the tls capability is not offered, so
// the client must stop before registering in plaintext.
func TestIRCInteropInspIRCdNoStartTLS(t *testing.T) {
	d := peer.StartInspIRCd(t, peer.InspIRCdOptions{NoStartTLS: true})
	t.Logf("InspIRCd %s", d.Version)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	raw, err := net.DialTimeout("tcp", d.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recordingConn{Conn: raw}
	start := time.Now()
	c, err := starttls.Client(ctx, rec, starttls.IRC, &starttls.Config{
		TLSConfig:    &tls.Config{RootCAs: d.CA.Pool(), ServerName: d.ServerName},
		PhaseTimeout: 5 * time.Second,
	})
	if err == nil {
		c.Close()
		t.Fatalf("upgrade succeeded without the starttls module: %q", c.CapabilitiesBefore)
	}
	if !errors.Is(err, starttls.ErrNotOffered) && !errors.Is(err, starttls.ErrRefused) {
		t.Fatalf("want ErrNotOffered or ErrRefused, got %v (after %v)", err, time.Since(start))
	}
	t.Logf("%v (status %s, after %v)", err, starttls.StatusOf(err), time.Since(start).Round(time.Millisecond))
	sent := rec.Written()
	if !strings.Contains(sent, "CAP LS") {
		t.Errorf("CAP LS not sent: %q", sent)
	}
	for _, cmd := range []string{"NICK", "USER", "PASS", "STARTTLS"} {
		if ircLinesHaveCommand(sent, cmd) {
			t.Errorf("%s sent in plaintext although tls was not offered: %q", cmd, sent)
		}
	}
	// The server agrees: nobody registered (InspIRCd logs each
	// registration as "Client connecting on port ...").
	time.Sleep(200 * time.Millisecond)
	if log := d.Log(); strings.Contains(log, "Client connecting") {
		t.Errorf("a client registered:\n%s", log)
	}

	// Opportunistic mode falls back to plaintext with the reason.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel2()
	c, err = starttls.Dial(ctx2, starttls.IRC, d.Addr, &starttls.Config{Opportunistic: true, PhaseTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("opportunistic: %v", err)
	}
	defer c.Close()
	if c.Upgraded() || !errors.Is(c.Fallback, starttls.ErrNotOffered) {
		t.Errorf("opportunistic: upgraded=%v fallback=%v", c.Upgraded(), c.Fallback)
	}
}

// TestIRCInteropInspIRCdNoCAP: STARTTLS is available but CAP is not, and
// InspIRCd ignores unknown commands from unregistered clients without any
// answer (no 421). The client must still get to STARTTLS rather than wait
// out its phase timeout for a CAP answer that never comes.
func TestIRCInteropInspIRCdNoCAP(t *testing.T) {
	d := peer.StartInspIRCd(t, peer.InspIRCdOptions{NoCAP: true})
	t.Logf("InspIRCd %s", d.Version)
	const phase = 4 * time.Second
	start := time.Now()
	c, err := dialIRC(t, d, d.ServerName, phase)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("server without CAP (STARTTLS loaded): %v after %v (status %s)", err, took.Round(time.Millisecond), starttls.StatusOf(err))
	}
	quitLater(t, c)
	checkVerifiedTLS(t, c)
	if took >= phase {
		t.Errorf("upgrade took %v: waited out the phase timeout", took)
	}
}

// TestIRCInteropInspIRCdHostnameNotices: with reverse lookups on, InspIRCd
// sends "*** Looking up your hostname..." unasked and another notice
// whenever the lookup ends, at any point of the dialogue, also between its
// CAP LS answer and our STARTTLS. Notices before the STARTTLS command are
// legitimate IRC, not injection (only bytes after the 670 go-ahead are).
// The timing varies, hence many dials.
func TestIRCInteropInspIRCdHostnameNotices(t *testing.T) {
	d := peer.StartInspIRCd(t, peer.InspIRCdOptions{ResolveHostnames: true})
	t.Logf("InspIRCd %s", d.Version)
	for i := 0; i < 100; i++ {
		c, err := dialIRC(t, d, d.ServerName, 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v\nserver log:\n%s", i, err, d.Log())
		}
		checkVerifiedTLS(t, c)
		if i == 0 {
			for _, e := range c.Transcript {
				t.Logf("%v tls=%v sent=%v %q", e.At.Round(time.Microsecond), e.TLS, e.Sent, e.Text)
			}
		}
		c.Close()
	}
}

// httpGet sends a GET for path inside the session and reads one response.
func httpGet(t *testing.T, c *starttls.Conn, host, path string) {
	t.Helper()
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET "+path+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// httpRead reads one response (head and body) within a deadline.
func httpRead(t *testing.T, c *starttls.Conn, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer c.SetReadDeadline(time.Time{})
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response to %s: %v", method, err)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if err != nil {
		t.Fatalf("reading the body of %s %s: %v", method, resp.Status, err)
	}
	return resp, string(body)
}

func TestHTTPInteropCUPS(t *testing.T) {
	cu := peer.StartCUPS(t, peer.CUPSOptions{})
	t.Logf("CUPS %s", cu.Version)
	_, port, _ := net.SplitHostPort(cu.Addr)
	cfg := func(serverName string) *starttls.Config {
		return &starttls.Config{TLSConfig: &tls.Config{RootCAs: cu.CA.Pool(), ServerName: serverName}}
	}
	dial := func(t *testing.T, p starttls.Protocol, addr string, c *starttls.Config) (*starttls.Conn, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		return starttls.Dial(ctx, p, addr, c)
	}

	for _, tc := range []struct {
		name  string
		proto starttls.Protocol
		addr  string
	}{
		{"upgrade 127.0.0.1", starttls.HTTP, cu.Addr},
		{"upgrade localhost", starttls.HTTP, net.JoinHostPort("localhost", port)},
		{"implicit https", starttls.HTTPS, net.JoinHostPort("localhost", port)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := dial(t, tc.proto, tc.addr, cfg(""))
			if err != nil {
				t.Fatalf("%v\ncupsd log:\n%s", err, cu.Log())
			}
			defer c.Close()
			checkVerifiedTLS(t, c)
			if tc.proto == starttls.HTTP {
				if c.Implicit {
					t.Error("upgrade reported as implicit TLS")
				}
				var status string
				for _, e := range c.Transcript {
					if !e.Sent && !e.TLS && strings.HasPrefix(e.Text, "HTTP/") {
						status = e.Text
						break
					}
				}
				if !strings.HasPrefix(status, "HTTP/1.1 101") {
					t.Errorf("pre-TLS status line %q, want 101", status)
				}
			}
			host, _, _ := net.SplitHostPort(tc.addr)
			br := bufio.NewReader(c)
			httpGet(t, c, host, "/")
			resp, body := httpRead(t, c, br, "GET")
			if resp.StatusCode == http.StatusOK && !strings.Contains(body, cu.IndexMarker) && tc.proto == starttls.HTTP {
				// RFC 2817 §3.3: after the handshake the server "MUST
				// continue with the response to the original request",
				// the OPTIONS *; cupsd does. A client that leaves it in the
				// stream hands the caller a response to a request it never
				// made, and every later response is off by one.
				t.Errorf("first response inside TLS is the deferred answer to OPTIONS * (%s, %q, Allow %q), "+
					"left unread by the client half", resp.Status, body, resp.Header.Get("Allow"))
				resp, body = httpRead(t, c, br, "GET")
			}
			if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 1 || resp.ProtoMinor != 1 {
				t.Fatalf("GET / inside TLS: %s %s", resp.Proto, resp.Status)
			}
			if !strings.Contains(body, cu.IndexMarker) {
				t.Errorf("GET / inside TLS: body lacks the index marker: %q", body)
			}
			if !strings.HasPrefix(resp.Header.Get("Server"), "CUPS/") {
				t.Errorf("Server header %q", resp.Header.Get("Server"))
			}
		})
	}

	t.Run("wrong name", func(t *testing.T) {
		_, err := dial(t, starttls.HTTP, cu.Addr, cfg("other.test"))
		if !errors.Is(err, starttls.ErrCertificate) {
			t.Errorf("want a certificate error, got %v", err)
		}
	})
}
