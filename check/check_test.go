package check

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

type testPKI struct {
	ca   *certs.CA
	leaf *certs.Leaf
}

func newPKI(t *testing.T, o certs.LeafOptions) *testPKI {
	t.Helper()
	ca, err := certs.NewCA("check test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(o)
	if err != nil {
		t.Fatal(err)
	}
	return &testPKI{ca: ca, leaf: leaf}
}

func (p *testPKI) server() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{p.leaf.TLS}}
}

// correctServer runs the library's server half with a small, correct
// post-TLS application: the negative control for every finding.
func correctServer(t *testing.T, proto starttls.Protocol, cfg starttls.ServerConfig) string {
	t.Helper()
	return startHalf(t, proto, cfg, postTLSApp)
}

func postTLSApp(ctx context.Context, c *starttls.Conn) {
	defer c.Close()
	info, _ := starttls.Lookup(c.Protocol)
	if c.Implicit {
		greet := map[starttls.Protocol]string{starttls.IMAP: "* OK ready", starttls.POP3: "+OK ready"}[info.Base]
		if greet == "" {
			greet = "220 correct.test ESMTP"
		}
		_, _ = c.Write([]byte(greet + "\r\n"))
	}
	hello := false
	for i := 0; i < 30 && ctx.Err() == nil; i++ {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		line, err := c.ReadLine()
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(line, " ")
		var reply string
		switch info.Base {
		case starttls.IMAP:
			verb, _, _ := strings.Cut(rest, " ")
			switch strings.ToUpper(verb) {
			case "LOGIN", "AUTHENTICATE":
				// Reached in plaintext only under the Optional policy.
				reply = tag + " NO [AUTHENTICATIONFAILED] Authentication failed"
			case "CAPABILITY":
				reply = "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done"
			case "STARTTLS":
				reply = tag + " BAD TLS already active"
			case "LOGOUT":
				_, _ = c.Write([]byte("* BYE\r\n" + tag + " OK bye\r\n"))
				return
			default:
				reply = tag + " OK done"
			}
		case starttls.POP3:
			switch strings.ToUpper(tag) {
			case "CAPA":
				reply = "+OK\r\nUSER\r\nSASL PLAIN\r\n."
			case "USER":
				reply = "+OK send PASS"
			case "STLS":
				reply = "-ERR TLS already active"
			case "QUIT":
				_, _ = c.Write([]byte("+OK bye\r\n"))
				return
			default:
				reply = "-ERR unknown"
			}
		case starttls.NNTP:
			switch strings.ToUpper(tag) {
			case "CAPABILITIES":
				reply = "101 Capability list:\r\nVERSION 2\r\nREADER\r\n."
			case "AUTHINFO":
				reply = "381 Password required"
			case "DATE":
				reply = "111 20260101000000"
			case "HELP":
				reply = "100 Help text follows\r\n."
			case "QUIT":
				_, _ = c.Write([]byte("205 Bye\r\n"))
				return
			default:
				reply = "502 Not permitted"
			}
		case starttls.Sieve:
			switch strings.ToUpper(tag) {
			case "NOOP":
				reply = `OK "NOOP completed"`
			case "AUTHENTICATE":
				reply = `NO "Authentication failed"`
			case "LOGOUT":
				_, _ = c.Write([]byte("OK \"Bye\"\r\n"))
				return
			default:
				reply = `NO "Unknown command"`
			}
		default:
			switch strings.ToUpper(tag) {
			case "AUTH":
				reply = "535 5.7.8 Authentication credentials invalid"
			case "EHLO", "LHLO":
				hello, reply = true, "250-correct.test\r\n250 AUTH PLAIN"
			case "MAIL":
				reply = "503 5.5.1 EHLO first"
				if hello {
					reply = "250 2.1.0 Ok"
				}
			case "STARTTLS":
				reply = "503 5.5.1 TLS already active"
			case "QUIT":
				_, _ = c.Write([]byte("221 2.0.0 Bye\r\n"))
				return
			default:
				reply = "250 2.0.0 Ok"
			}
		}
		if _, err := c.Write([]byte(reply + "\r\n")); err != nil {
			return
		}
	}
}

func checkAddr(t *testing.T, proto starttls.Protocol, addr string, roots *x509.CertPool, mod ...func(*Options)) *Report {
	t.Helper()
	tg, err := starttls.ParseTarget(addr, proto)
	if err != nil {
		t.Fatal(err)
	}
	o := Options{Roots: roots, Timeout: 3 * time.Second, ServerName: "localhost"}
	for _, m := range mod {
		m(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	return Run(ctx, tg, o)
}

func ids(r *Report) []string {
	var s []string
	for _, f := range r.Findings {
		s = append(s, f.ID+"("+f.Severity.String()+")")
	}
	return s
}

func requireFinding(t *testing.T, r *Report, id string, present bool) {
	t.Helper()
	if r.Has(id) != present {
		t.Errorf("finding %s present=%v, want %v; findings: %v; status %s %s; probes %v", id, r.Has(id), present, ids(r), r.Status, r.Error, r.StartTLS.Probes)
	}
}

// TestCleanServers is the negative test of every finding: a correct server
// with a good certificate has none of them.
func TestCleanServers(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, p := range []starttls.Protocol{starttls.SMTP, starttls.Submission, starttls.IMAP, starttls.POP3, starttls.SMTPS, starttls.IMAPS} {
		t.Run(string(p), func(t *testing.T) {
			addr := correctServer(t, p, starttls.ServerConfig{TLSConfig: pki.server()})
			r := checkAddr(t, p, addr, pki.ca.Pool())
			if r.Status != starttls.StatusSuccess {
				t.Fatalf("status %s: %s", r.Status, r.Error)
			}
			for _, f := range r.Findings {
				if f.ID == "lucky13" && f.Severity == Info {
					continue // Go's default TLS 1.2 suites include ECDHE AES-CBC-SHA
				}
				t.Errorf("unexpected finding on a correct server: %s: %s", f.ID, f.Evidence)
			}
			if !r.TLS.Versions["tls1.3"] || !r.TLS.Versions["tls1.2"] || r.TLS.Versions["tls1.0"] {
				t.Errorf("versions %v", r.TLS.Versions)
			}
			if len(r.TLS.CipherSuites["tls1.3"]) == 0 || len(r.TLS.CipherSuites["tls1.2"]) == 0 {
				t.Errorf("suites %v", r.TLS.CipherSuites)
			}
			if len(r.TLS.Groups) == 0 {
				t.Errorf("no groups found")
			}
			if !isImplicit(p) && r.StartTLS.Probes["command-injection"] != "pass" && !strings.HasPrefix(r.StartTLS.Probes["command-injection"], "pass") {
				t.Errorf("command-injection probe: %q", r.StartTLS.Probes["command-injection"])
			}
			if g := r.Grade; g != "A+" {
				t.Errorf("grade %s, findings %v", g, ids(r))
			}
		})
	}
}

func isImplicit(p starttls.Protocol) bool { i, _ := starttls.Lookup(p); return i.Implicit }
