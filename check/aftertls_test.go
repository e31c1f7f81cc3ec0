package check

import (
	"context"
	"encoding/xml"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
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
			m, err := starttls.ParseLDAPMessage(buf[:n])
			if err != nil || m.ID > 127 || m.OpName() == "UnbindRequest" {
				return
			}
			body := append([]byte{0x0a, 1, code, 0x04, 0, 0x04, 0, 0x8a, byte(len(starttls.LDAPStartTLSOID))}, starttls.LDAPStartTLSOID...)
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
