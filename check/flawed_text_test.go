package check

import (
	"bufio"
	"crypto/tls"
	"net"
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// upgrade sends the go-ahead (plus the flaw's injected bytes) and runs the
// TLS handshake; with executePipelined the plaintext already buffered is
// kept and read inside TLS, the CVE-2011-0411 flaw.
func (s *flawedSMTP) upgrade(raw net.Conn, br *bufio.Reader, goAhead string) (net.Conn, *bufio.Reader, bool) {
	if _, err := raw.Write([]byte(goAhead + "\r\n" + s.f.injectAfterGo)); err != nil {
		return nil, nil, false
	}
	pending := s.kept(br)
	tc := tls.Server(raw, s.tls)
	if err := tc.Handshake(); err != nil {
		return nil, nil, false
	}
	if len(pending) > 0 {
		return tc, bufio.NewReader(&prefixReader{pending: pending, r: tc}), true
	}
	return tc, bufio.NewReader(tc), true
}

func (s *flawedSMTP) imapSession(raw net.Conn) {
	var conn net.Conn = raw
	br := bufio.NewReader(conn)
	w := func(lines ...string) { _, _ = conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")) }
	w("* OK flawed.test IMAP ready")
	inTLS := false
	for i := 0; i < 30; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, rest, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		verb, _, _ := strings.Cut(rest, " ")
		switch strings.ToUpper(verb) {
		case "CAPABILITY":
			caps := "IMAP4rev1"
			if !inTLS || s.f.startTLSAfterTLS {
				caps += " STARTTLS"
			}
			switch {
			case inTLS:
				caps += " AUTH=PLAIN"
			case !s.f.advertiseLogin:
				caps += " LOGINDISABLED"
			}
			w("* CAPABILITY "+caps, tag+" OK CAPABILITY completed")
		case "STARTTLS":
			if inTLS {
				if s.f.startTLSAfterTLS {
					w(tag + " OK Begin TLS negotiation now")
				} else {
					w(tag + " BAD TLS already active")
				}
				continue
			}
			if conn, br, inTLS = s.upgrade(raw, br, tag+" OK Begin TLS negotiation now"); !inTLS {
				return
			}
		case "LOGIN", "AUTHENTICATE":
			if !inTLS && !s.f.plaintextLogin {
				w(tag + " NO [PRIVACYREQUIRED] Use STARTTLS first")
				continue
			}
			w(tag + " NO [AUTHENTICATIONFAILED] Authentication failed.")
		case "NOOP":
			w(tag + " OK NOOP completed")
		case "LOGOUT":
			w("* BYE logging out", tag+" OK LOGOUT completed")
			return
		default:
			w(tag + " BAD unknown command")
		}
	}
}

func (s *flawedSMTP) pop3Session(raw net.Conn) {
	var conn net.Conn = raw
	br := bufio.NewReader(conn)
	w := func(lines ...string) { _, _ = conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n")) }
	w("+OK flawed.test POP3 ready")
	inTLS := false
	for i := 0; i < 30; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		switch strings.ToUpper(verb) {
		case "CAPA":
			caps := []string{"+OK capabilities", "TOP", "UIDL"}
			if inTLS || s.f.advertiseLogin {
				caps = append(caps, "USER")
			}
			if !inTLS || s.f.startTLSAfterTLS {
				caps = append(caps, "STLS")
			}
			w(append(caps, ".")...)
		case "STLS":
			if inTLS {
				if s.f.startTLSAfterTLS {
					w("+OK Begin TLS negotiation")
				} else {
					w("-ERR TLS already active")
				}
				continue
			}
			if conn, br, inTLS = s.upgrade(raw, br, "+OK Begin TLS negotiation"); !inTLS {
				return
			}
		case "USER":
			if !inTLS && !s.f.plaintextLogin {
				w("-ERR [AUTH] Plaintext authentication disallowed, use STLS")
				continue
			}
			w("+OK send PASS")
		case "QUIT":
			w("+OK bye")
			return
		default:
			w("-ERR unknown command")
		}
	}
}

// TestTextProtocolFlaws proves the STARTTLS flaws positive on IMAP and
// POP3 servers that really have them, and negative on the same servers
// without the flaw.
func TestTextProtocolFlaws(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	type flawCase struct {
		id   string
		flaw flaws
		sev  Severity
	}
	cases := map[starttls.Protocol][]flawCase{
		starttls.IMAP: {
			{"command-injection", flaws{executePipelined: true}, Critical},
			{"command-injection", flaws{keepPartialLine: true}, Critical},
			{"response-injection", flaws{injectAfterGo: "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"}, High},
			{"response-injection", flaws{injectAfterGo: "* OK [ALERT] partial"}, High}, // no CRLF
			{"starttls-after-tls", flaws{startTLSAfterTLS: true}, Medium},
			{"plaintext-login", flaws{plaintextLogin: true}, High},
			{"plaintext-login", flaws{advertiseLogin: true}, Medium},
		},
		starttls.POP3: {
			{"command-injection", flaws{executePipelined: true}, Critical},
			{"response-injection", flaws{injectAfterGo: "+OK injected\r\n"}, High},
			{"response-injection", flaws{injectAfterGo: "+OK part"}, High}, // no CRLF
			{"starttls-after-tls", flaws{startTLSAfterTLS: true}, Medium},
			{"plaintext-login", flaws{plaintextLogin: true}, High},
			{"plaintext-login", flaws{advertiseLogin: true}, Medium},
		},
		starttls.SMTP: {
			{"command-injection", flaws{keepPartialLine: true}, Critical},
			{"response-injection", flaws{injectAfterGo: "250 AUTH PL"}, High}, // no CRLF
			// Port 25 is probed only where AUTH is advertised before TLS.
			{"plaintext-login", flaws{plaintextLogin: true, authBeforeTLS: true}, High},
			{"plaintext-mail-accepted", flaws{mailBeforeTLS: true}, Info},
			{"starttls-argument-accepted", flaws{startTLSArgument: true}, Low},
		},
		starttls.Submission: {
			{"plaintext-login", flaws{plaintextLogin: true}, High},
			{"plaintext-mail-accepted", flaws{mailBeforeTLS: true}, High},
		},
	}
	for p, list := range cases {
		for _, tc := range list {
			t.Run(string(p)+"/"+tc.id+"/"+strings.NewReplacer(" ", "", "{", "", "}", "").Replace(flawName(tc.flaw)), func(t *testing.T) {
				t.Parallel()
				bad := checkAddr(t, p, startFlawed(t, p, tc.flaw, pki.server()), pki.ca.Pool())
				requireFinding(t, bad, tc.id, true)
				for _, f := range bad.Findings {
					if f.ID != tc.id {
						continue
					}
					if f.Severity != tc.sev {
						t.Errorf("severity %s, want %s: %+v", f.Severity, tc.sev, f)
					}
					if f.Evidence == "" || f.Fix == "" || f.Title == "" {
						t.Errorf("finding lacks evidence, title or fix: %+v", f)
					}
				}
				if v, ok := bad.StartTLS.Probes[tc.id]; ok && !strings.HasPrefix(v, "fail") {
					t.Errorf("flawed server: %s probe %q", tc.id, v)
				}
				good := checkAddr(t, p, startFlawed(t, p, flaws{}, pki.server()), pki.ca.Pool())
				requireFinding(t, good, tc.id, false)
				if good.Status != starttls.StatusSuccess {
					t.Errorf("clean server: status %s %s", good.Status, good.Error)
				}
				if v, ok := good.StartTLS.Probes[tc.id]; ok && !strings.HasPrefix(v, "pass") && !strings.HasPrefix(v, "n/a") {
					t.Errorf("clean server: %s probe %q", tc.id, v)
				}
			})
		}
	}
}

// flawName names a flaws value for a subtest.
func flawName(f flaws) string {
	var n []string
	for name, on := range map[string]bool{"pipelined": f.executePipelined, "again": f.startTLSAfterTLS, "login": f.plaintextLogin,
		"advertised": f.advertiseLogin, "mail": f.mailBeforeTLS, "argument": f.startTLSArgument, "keeppartial": f.keepPartialLine} {
		if on {
			n = append(n, name)
		}
	}
	if f.injectAfterGo != "" {
		if strings.HasSuffix(f.injectAfterGo, "\n") {
			n = append(n, "lines")
		} else {
			n = append(n, "partial")
		}
	}
	return strings.Join(n, "+")
}
