package check

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/proto/ldap"
	"github.com/starttls-go/starttls/serve"
)

// startHalf runs the library's server half of proto with h as the
// application inside TLS.
func startHalf(t *testing.T, proto starttls.Protocol, cfg starttls.ServerConfig, h func(ctx context.Context, c *starttls.Conn)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	srv := &starttls.Server{Protocol: proto, Config: cfg, Handler: h}
	go func() { defer close(done); _ = srv.Serve(ctx, l) }()
	return l.Addr().String()
}

// serveXMPP is the embedded server's XMPP application: it answers a second
// <starttls/> with <failure/>.
func serveXMPP(ctx context.Context, c *starttls.Conn) {
	defer c.Close()
	serve.ServeConn(ctx, c, serve.Options{IdleTimeout: 5 * time.Second})
}

// offerAgainXMPP is a flawed application: the features after the stream
// restart offer <starttls/> again, and a second <starttls/> gets <proceed/>.
func offerAgainXMPP(ctx context.Context, c *starttls.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	dec := xml.NewDecoder(io.LimitReader(c, 1<<16))
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		tok, err := dec.Token()
		if err != nil {
			return
		}
		switch e := tok.(type) {
		case xml.StartElement:
			switch e.Name.Local {
			case "stream":
				_, _ = io.WriteString(c, "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='again' from='localhost' version='1.0'>"+
					"<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:features>")
			case "starttls":
				_, _ = io.WriteString(c, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>")
			}
		case xml.EndElement:
			if e.Name.Local == "stream" {
				_, _ = io.WriteString(c, "</stream:stream>")
				return
			}
		}
	}
}

// TestXMPPStartTLSFindings: starttls-not-required from features without
// <required/> (the server half's Optional policy, on the wire), and
// starttls-after-tls from features that offer <starttls/> again after the
// restart; a server requiring TLS and refusing a second <starttls/> has
// neither.
func TestXMPPStartTLSFindings(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, tc := range []struct {
		name        string
		policy      starttls.ServerPolicy
		app         func(context.Context, *starttls.Conn)
		notRequired bool
		again       bool
	}{
		{"required, refuses again", starttls.Required, serveXMPP, false, false},
		{"optional", starttls.Optional, serveXMPP, true, false},
		{"offers starttls again", starttls.Required, offerAgainXMPP, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startHalf(t, starttls.XMPP, starttls.ServerConfig{TLSConfig: pki.server(), Policy: tc.policy}, tc.app)
			r := checkAddr(t, starttls.XMPP, addr, pki.ca.Pool())
			if r.Status != starttls.StatusSuccess {
				t.Fatalf("status %s: %s", r.Status, r.Error)
			}
			requireFinding(t, r, "starttls-not-required", tc.notRequired)
			requireFinding(t, r, "starttls-after-tls", tc.again)
			want := "pass"
			if tc.again {
				want = "fail"
			}
			if v := r.StartTLS.Probes["starttls-after-tls"]; v != want {
				t.Errorf("starttls-after-tls probe %q, want %q", v, want)
			}
			for _, f := range r.Findings {
				if f.ID == "starttls-not-required" && (f.Severity != Low || !strings.Contains(f.Evidence, "without <required/>")) {
					t.Errorf("%+v", f)
				}
			}
			if !tc.notRequired && !tc.again && r.Grade != "A+" {
				t.Errorf("grade %s, findings %v", r.Grade, ids(r))
			}
			t.Logf("grade %s findings %v probes %v", r.Grade, ids(r), r.StartTLS.Probes)
		})
	}
}

// ldapAnswerStartTLS is an LDAP application inside TLS that answers every
// request with a StartTLS ExtendedResponse of resultCode code: 0 is the
// flaw (a second StartTLS accepted), 1 operationsError the correct answer
// (RFC 4511 §4.14.1).
func ldapAnswerStartTLS(code byte) func(ctx context.Context, c *starttls.Conn) {
	return func(ctx context.Context, c *starttls.Conn) {
		defer c.Close()
		buf := make([]byte, 512)
		for i := 0; i < 10 && ctx.Err() == nil; i++ {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			n, err := c.Read(buf)
			if err != nil {
				return
			}
			m, err := ldap.ParseMessage(buf[:n])
			if err != nil || m.ID > 127 || m.OpName() == "UnbindRequest" {
				return
			}
			body := append([]byte{0x0a, 1, code, 0x04, 0, 0x04, 0, 0x8a, byte(len(ldap.StartTLSOID))}, ldap.StartTLSOID...)
			op := append([]byte{0x78, byte(len(body))}, body...)
			msg := append([]byte{0x30, byte(3 + len(op)), 0x02, 0x01, byte(m.ID)}, op...)
			if _, err := c.Write(msg); err != nil {
				return
			}
		}
	}
}

// TestLDAPStartTLSAgain: a second StartTLS inside TLS answered success is
// starttls-after-tls; operationsError passes (slapd, in the interop test,
// answers so too).
func TestLDAPStartTLSAgain(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, tc := range []struct {
		code byte
		want string
	}{{0, "fail"}, {1, "pass"}} {
		addr := startHalf(t, starttls.LDAP, starttls.ServerConfig{TLSConfig: pki.server()}, ldapAnswerStartTLS(tc.code))
		r := checkAddr(t, starttls.LDAP, addr, pki.ca.Pool())
		if v := r.StartTLS.Probes["starttls-after-tls"]; v != tc.want {
			t.Errorf("resultCode %d: starttls-after-tls probe %q, want %q", tc.code, v, tc.want)
		}
		requireFinding(t, r, "starttls-after-tls", tc.code == 0)
	}
}

// lineApp is a line protocol's application inside TLS: answer maps an
// upper-cased command word to its reply ("" ends the session).
func lineApp(answer func(verb, line string) string) func(ctx context.Context, c *starttls.Conn) {
	return func(ctx context.Context, c *starttls.Conn) {
		defer c.Close()
		for i := 0; i < 30 && ctx.Err() == nil; i++ {
			_ = c.SetDeadline(time.Now().Add(5 * time.Second))
			line, err := c.ReadLine()
			if err != nil {
				return
			}
			verb, _, _ := strings.Cut(strings.ToUpper(line), " ")
			reply := answer(verb, line)
			if reply == "" {
				return
			}
			if _, err := c.Write([]byte(reply + "\r\n")); err != nil {
				return
			}
		}
	}
}

// TestStartTLSAgainLineProtocols: NNTP, FTP, ManageSieve and IRC servers
// that accept a second upgrade inside TLS (NNTP also advertising it again)
// get starttls-after-tls; the same servers refusing it do not.
func TestStartTLSAgainLineProtocols(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	apps := map[starttls.Protocol]func(again bool) func(verb, line string) string{
		starttls.NNTP: func(again bool) func(string, string) string {
			return func(verb, _ string) string {
				switch verb {
				case "CAPABILITIES":
					if again {
						return "101 Capability list:\r\nVERSION 2\r\nREADER\r\nSTARTTLS\r\n."
					}
					return "101 Capability list:\r\nVERSION 2\r\nREADER\r\n."
				case "STARTTLS":
					if again {
						return "382 Continue with TLS negotiation"
					}
					return "502 Already using TLS"
				case "HELP":
					return "100 Help\r\n."
				case "QUIT":
					return ""
				}
				return "500 What?"
			}
		},
		starttls.FTP: func(again bool) func(string, string) string {
			return func(verb, _ string) string {
				switch verb {
				case "PBSZ":
					return "200 PBSZ=0"
				case "PROT":
					return "200 PROT P"
				case "FEAT":
					return "211-Features:\r\n AUTH TLS\r\n PBSZ\r\n PROT\r\n211 End"
				case "AUTH":
					if again {
						return "234 AUTH TLS OK"
					}
					return "503 Already using TLS"
				case "NOOP":
					return "200 OK"
				case "QUIT":
					return ""
				}
				return "502 Not implemented"
			}
		},
		starttls.Sieve: func(again bool) func(string, string) string {
			return func(verb, _ string) string {
				switch verb {
				case "STARTTLS":
					if again {
						return `OK "Begin TLS negotiation now"`
					}
					return `NO "TLS already active"`
				case "NOOP":
					return `OK "NOOP completed"`
				case "LOGOUT":
					return ""
				}
				return `NO "Unknown command"`
			}
		},
		starttls.IRC: func(again bool) func(string, string) string {
			return func(verb, line string) string {
				switch verb {
				case "STARTTLS":
					if again {
						return ":localhost 670 * :STARTTLS successful, proceed with TLS handshake"
					}
					return ":localhost 691 * :STARTTLS failure"
				case "CAP":
					return ":localhost CAP * LS :multi-prefix"
				case "PING":
					_, arg, _ := strings.Cut(line, " ")
					return ":localhost PONG localhost " + arg
				case "QUIT":
					return ""
				}
				return ":localhost 421 * " + verb + " :Unknown command"
			}
		},
	}
	for p, app := range apps {
		for _, again := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/again=%v", p, again), func(t *testing.T) {
				addr := startHalf(t, p, starttls.ServerConfig{TLSConfig: pki.server()}, lineApp(app(again)))
				r := checkAddr(t, p, addr, pki.ca.Pool())
				if r.Status != starttls.StatusSuccess {
					t.Fatalf("status %s: %s", r.Status, r.Error)
				}
				requireFinding(t, r, "starttls-after-tls", again)
				want := map[bool]string{true: "fail", false: "pass"}[again]
				if v := r.StartTLS.Probes["starttls-after-tls"]; v != want {
					t.Errorf("starttls-after-tls probe %q, want %q", v, want)
				}
			})
		}
	}
}

// A server that goes silent inside TLS (a relay such as openssl s_server
// behind a front) leaves the second-upgrade question open, and the probe
// gives up after a multiple of the main session's pace, not after the
// whole phase timeout.
func TestUpgradeAgainSilentServer(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	silent := func(ctx context.Context, c *starttls.Conn) {
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, _ = io.Copy(io.Discard, c)
	}
	addr := startHalf(t, starttls.Postgres, starttls.ServerConfig{TLSConfig: pki.server()}, silent)
	r := checkAddr(t, starttls.Postgres, addr, pki.ca.Pool(), func(o *Options) { o.Timeout = 15 * time.Second })
	v := r.StartTLS.Probes["starttls-after-tls"]
	if !strings.HasPrefix(v, "error") {
		t.Fatalf("starttls-after-tls probe %q, want an error (no answer)", v)
	}
	requireFinding(t, r, "starttls-after-tls", false)
	if ms := r.Timings.ProbesMS["starttls-after-tls"]; ms >= 15000 {
		t.Errorf("the probe waited %.0f ms, the whole phase timeout", ms)
	}
}
