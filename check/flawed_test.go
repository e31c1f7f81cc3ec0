package check

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// flaws are the misbehaviours a flawedSMTP server can have; the zero value
// is a correct server.
type flaws struct {
	noStartTLS        bool   // STARTTLS not advertised
	refuse            string // reply to STARTTLS instead of 220, e.g. "454 4.7.0 TLS not available"
	injectAfterGo     string // bytes sent right after "220 go ahead", before TLS
	executePipelined  bool   // answer commands pipelined after STARTTLS inside TLS (CVE-2011-0411)
	startTLSAfterTLS  bool   // advertise and accept STARTTLS again inside TLS
	keepStateAfterTLS bool   // accept MAIL inside TLS without a new EHLO
	authBeforeTLS     bool   // advertise AUTH before TLS
	sslv3Only         bool   // answer only SSLv3 ClientHellos, with an SSLv3 ServerHello
	plaintextLogin    bool   // take credentials before TLS (535, NO [AUTHENTICATIONFAILED], +OK to USER)
	advertiseLogin    bool   // IMAP: no LOGINDISABLED; POP3: USER in CAPA, before TLS
	mailBeforeTLS     bool   // SMTP: answer MAIL FROM with 250 before TLS
	startTLSArgument  bool   // SMTP: start TLS on "STARTTLS <arg>" instead of 501
	keepPartialLine   bool   // drop whole lines buffered at STARTTLS but keep an unfinished one, glued to the first line inside TLS
}

// flawedSMTP is a hand-written SMTP server for the checker's positive
// tests: each flaw is real behaviour on the wire, not a flag in a report.
type flawedSMTP struct {
	t     *testing.T
	proto starttls.Protocol // SMTP (default), IMAP or POP3
	f     flaws
	tls   *tls.Config
	l     net.Listener
	wg    sync.WaitGroup
}

func startFlawedSMTP(t *testing.T, f flaws, cfg *tls.Config) string {
	t.Helper()
	return startFlawed(t, starttls.SMTP, f, cfg)
}

// startFlawed starts a flawed server speaking proto's base protocol
// (SMTP, IMAP or POP3).
func startFlawed(t *testing.T, proto starttls.Protocol, f flaws, cfg *tls.Config) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	info, err := starttls.Lookup(proto)
	if err != nil {
		t.Fatal(err)
	}
	s := &flawedSMTP{t: t, proto: info.Base, f: f, tls: cfg, l: l}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() { l.Close(); s.wg.Wait() })
	return l.Addr().String()
}

func (s *flawedSMTP) accept() {
	defer s.wg.Done()
	for {
		c, err := s.l.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			switch s.proto {
			case starttls.IMAP:
				s.imapSession(c)
			case starttls.POP3:
				s.pop3Session(c)
			default:
				s.session(c)
			}
		}()
	}
}

func (s *flawedSMTP) session(raw net.Conn) {
	var conn net.Conn = raw
	br := bufio.NewReader(conn)
	w := func(lines ...string) {
		_, _ = conn.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
	}
	w("220 flawed.test ESMTP")
	inTLS, helloAfterTLS, helloEver := false, false, false
	for i := 0; i < 30; i++ {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		switch verb {
		case "EHLO":
			caps := []string{"250-flawed.test", "250-PIPELINING"}
			if s.f.authBeforeTLS || inTLS {
				caps = append(caps, "250-AUTH PLAIN LOGIN")
			}
			if !s.f.noStartTLS && (!inTLS || s.f.startTLSAfterTLS) {
				caps = append(caps, "250-STARTTLS")
			}
			caps = append(caps, "250 8BITMIME")
			w(caps...)
			helloAfterTLS, helloEver = inTLS, true
		case "AUTH":
			switch {
			case inTLS:
				w("535 5.7.8 Authentication credentials invalid")
			case s.f.plaintextLogin:
				w("535 5.7.8 Authentication credentials invalid")
			default:
				w("530 5.7.0 Must issue a STARTTLS command first")
			}
		case "STARTTLS":
			if len(strings.Fields(line)) > 1 && !s.f.startTLSArgument {
				w("501 5.5.4 Syntax: STARTTLS")
				continue
			}
			if s.f.refuse != "" {
				w(s.f.refuse)
				continue
			}
			if inTLS && !s.f.startTLSAfterTLS {
				w("503 5.5.1 TLS already active")
				continue
			}
			_, _ = conn.Write([]byte("220 2.0.0 go ahead\r\n" + s.f.injectAfterGo))
			// The flaw of CVE-2011-0411: the plaintext buffer survives the upgrade.
			if s.f.sslv3Only {
				sslv3Answer(raw)
				return
			}
			pending := s.kept(br)
			tc := tls.Server(raw, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			conn, inTLS, helloAfterTLS = tc, true, false
			br = bufio.NewReader(conn)
			if len(pending) > 0 {
				br = bufio.NewReader(&prefixReader{pending: pending, r: conn})
			}
		case "MAIL":
			switch {
			case !inTLS && s.f.mailBeforeTLS:
				w("250 2.1.0 Ok")
			case !inTLS:
				w("530 5.7.0 Must issue a STARTTLS command first")
			case !helloAfterTLS && !(s.f.keepStateAfterTLS && helloEver):
				// The flaw: an EHLO from before TLS still counts.
				w("503 5.5.1 EHLO first")
			default:
				w("250 2.1.0 Ok")
			}
		case "QUIT":
			w("221 2.0.0 Bye")
			return
		case "RSET", "NOOP":
			w("250 2.0.0 Ok")
		default:
			w("500 5.5.2 Error: command not recognized")
		}
	}
}

// kept is what the flaws keep of the plaintext buffered at the upgrade.
func (s *flawedSMTP) kept(br *bufio.Reader) []byte {
	if br.Buffered() == 0 || !s.f.executePipelined && !s.f.keepPartialLine {
		return nil
	}
	b, _ := br.Peek(br.Buffered())
	b = append([]byte(nil), b...)
	if !s.f.executePipelined {
		b = b[bytes.LastIndexByte(b, '\n')+1:]
	}
	return b
}

// prefixReader yields pending first, then r: the buffer that should have
// been discarded at the upgrade.
type prefixReader struct {
	pending []byte
	r       net.Conn
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pending) > 0 {
		n := copy(b, p.pending)
		p.pending = p.pending[n:]
		return n, nil
	}
	return p.r.Read(b)
}

var _ = context.Background

// sslv3Answer plays an SSLv3-only server for one ClientHello: a ServerHello
// choosing the first offered suite when the client offers SSLv3, else a
// protocol_version alert.
func sslv3Answer(c net.Conn) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(c, hdr); err != nil || hdr[0] != 22 {
		return
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(c, body); err != nil || len(body) < 39 || body[0] != 1 {
		return
	}
	alert := []byte{21, 3, 0, 0, 2, 2, 70}
	if body[4] != 3 || body[5] != 0 {
		_, _ = c.Write(alert)
		return
	}
	i := 38 + 1 + int(body[38])
	if i+4 > len(body) {
		return
	}
	n := int(body[i])<<8 | int(body[i+1])
	suites := body[i+2 : min(i+2+n, len(body))]
	var suite []byte
	for j := 0; j+1 < len(suites); j += 2 {
		if id := int(suites[j])<<8 | int(suites[j+1]); id != 0x00ff && id != 0x5600 {
			suite = suites[j : j+2]
			break
		}
	}
	if suite == nil {
		_, _ = c.Write(alert)
		return
	}
	hello := []byte{3, 0}
	hello = append(hello, make([]byte, 32)...) // random
	hello = append(hello, 0)                   // no session id
	hello = append(hello, suite...)
	hello = append(hello, 0) // null compression
	hs := append([]byte{2, 0, byte(len(hello) >> 8), byte(len(hello))}, hello...)
	rec := append([]byte{22, 3, 0, byte(len(hs) >> 8), byte(len(hs))}, hs...)
	_, _ = c.Write(rec)
}
