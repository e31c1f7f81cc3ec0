package starttls_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/proto/imap"
	"github.com/starttls-go/starttls/internal/proto/pop3"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// FuzzParseSMTPLine checks that every accepted line has a code in 200..599
// written as its first three digits, that "more" is exactly the '-'
// separator, and that code, separator and text give the line back.
func FuzzParseSMTPLine(f *testing.F) {
	for _, s := range []string{
		"220 mx.example.org ESMTP Postfix", "250-mx.example.org", "250-STARTTLS", "250 SIZE 10240000",
		"250", "554", "599 x", "199 too low", "600 too high", "250x", "25", "", "2a0 no", "250-",
		"250 ", "421 4.3.2 Service not available", "\x00\x00\x00", "250\t", "000", "999-",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		code, more, text, err := smtp.ParseLine(line)
		if err != nil {
			if !errors.Is(err, starttls.ErrProtocol) {
				t.Fatalf("ParseSMTPLine(%q): error %v does not match ErrProtocol", line, err)
			}
			if code != 0 || more || text != "" {
				t.Fatalf("ParseSMTPLine(%q): error with non-zero results %d %v %q", line, code, more, text)
			}
			return
		}
		if code < 200 || code > 599 {
			t.Fatalf("ParseSMTPLine(%q): code %d out of range", line, code)
		}
		if got := fmt.Sprintf("%03d", code); line[:3] != got {
			t.Fatalf("ParseSMTPLine(%q): code %d is not the line's first three bytes", line, code)
		}
		if len(line) == 3 {
			if more || text != "" {
				t.Fatalf("ParseSMTPLine(%q): bare code gave more=%v text=%q", line, more, text)
			}
			return
		}
		sep := " "
		if more {
			sep = "-"
		}
		if rebuilt := fmt.Sprintf("%03d%s%s", code, sep, text); rebuilt != line {
			t.Fatalf("ParseSMTPLine(%q) = %d %v %q; rebuilt %q", line, code, more, text, rebuilt)
		}
	})
}

// FuzzParseIMAPResponse checks that an accepted response has a tag without
// spaces, a non-empty upper-case status without spaces, and that tag,
// status and text come from the line in that order.
func FuzzParseIMAPResponse(f *testing.F) {
	for _, s := range []string{
		"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] Dovecot ready.",
		"* CAPABILITY IMAP4rev1 STARTTLS", "a1 OK Begin TLS negotiation now", "a1 ok done",
		"A0001 NO [ALERT] no", "* PREAUTH hi", "* BYE bye", "+ go ahead", "+", "+idling",
		"", " ", "*", "* ", "a(1 OK x", "a1  OK", "tag OK ", "* 12 EXISTS", "a\x7f1 OK", "a1 \xffok",
		"* ok \xc3\xa9t\xc3\xa9",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		r, err := imap.ParseResponse(line)
		if err != nil {
			if !errors.Is(err, starttls.ErrProtocol) {
				t.Fatalf("ParseIMAPResponse(%q): error %v does not match ErrProtocol", line, err)
			}
			if r != (imap.Response{}) {
				t.Fatalf("ParseIMAPResponse(%q): error with a non-zero response %+v", line, r)
			}
			return
		}
		if line[0] == '+' {
			if r.Tag != "+" || r.Status != "" {
				t.Fatalf("ParseIMAPResponse(%q): continuation parsed as %+v", line, r)
			}
			if line != "+"+r.Text && line != "+ "+r.Text {
				t.Fatalf("ParseIMAPResponse(%q): continuation text %q is not the rest of the line", line, r.Text)
			}
			return
		}
		if r.Tag == "" || (r.Tag != "*" && strings.ContainsAny(r.Tag, " +(){%*\"\\")) {
			t.Fatalf("ParseIMAPResponse(%q): bad tag %q", line, r.Tag)
		}
		for i := 0; i < len(r.Tag); i++ {
			if c := r.Tag[i]; c <= ' ' || c >= 0x7f {
				t.Fatalf("ParseIMAPResponse(%q): tag %q has byte %#x", line, r.Tag, c)
			}
		}
		if r.Status == "" || strings.Contains(r.Status, " ") {
			t.Fatalf("ParseIMAPResponse(%q): bad status %q", line, r.Status)
		}
		if !strings.HasPrefix(line, r.Tag+" ") || !strings.HasSuffix(line, r.Text) {
			t.Fatalf("ParseIMAPResponse(%q) = %+v: tag or text not from the line", line, r)
		}
		// For ASCII the status is the next word, upper-cased, and the line
		// is exactly tag SP status [SP text].
		if fuzzIsASCII(line) {
			rawStatus := line[len(r.Tag)+1 : len(r.Tag)+1+len(r.Status)]
			if strings.ToUpper(rawStatus) != r.Status {
				t.Fatalf("ParseIMAPResponse(%q): status %q is not %q upper-cased", line, r.Status, rawStatus)
			}
			rest := line[len(r.Tag)+1+len(r.Status):]
			if rest != "" && rest != " "+r.Text {
				t.Fatalf("ParseIMAPResponse(%q) = %+v: rest of line %q is not SP text", line, r, rest)
			}
		} else if utf8.ValidString(line) && strings.ToUpper(r.Status) != r.Status {
			t.Fatalf("ParseIMAPResponse(%q): status %q not upper-cased", line, r.Status)
		}
	})
}

func fuzzIsASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// FuzzParsePOP3Status checks that only +OK / -ERR lines are accepted, that
// ok matches the indicator, and that indicator and text give the line back.
func FuzzParsePOP3Status(f *testing.F) {
	for _, s := range []string{
		"+OK Dovecot ready.", "+OK", "-ERR", "-ERR no such command", "+OK ", "+OKAY", "-ERROR",
		"+ok", "", "+", "-", "STLS", "+OK\x00", "-ERR  two spaces",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		ok, text, err := pop3.ParseStatus(line)
		if err != nil {
			if !errors.Is(err, starttls.ErrProtocol) {
				t.Fatalf("ParsePOP3Status(%q): error %v does not match ErrProtocol", line, err)
			}
			if ok || text != "" {
				t.Fatalf("ParsePOP3Status(%q): error with results %v %q", line, ok, text)
			}
			if line == "+OK" || line == "-ERR" || strings.HasPrefix(line, "+OK ") || strings.HasPrefix(line, "-ERR ") {
				t.Fatalf("ParsePOP3Status(%q): valid status line rejected: %v", line, err)
			}
			return
		}
		ind := "-ERR"
		if ok {
			ind = "+OK"
		}
		if line != ind && line != ind+" "+text {
			t.Fatalf("ParsePOP3Status(%q) = %v %q: does not rebuild the line", line, ok, text)
		}
	})
}

// fuzzPKI is shared by the dialogue fuzzers: issuing a certificate per
// input would dominate the run.
var fuzzPKI = sync.OnceValues(func() (*certs.CA, *certs.Leaf) {
	ca, err := certs.NewCA("fuzz CA")
	if err != nil {
		panic(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		panic(err)
	}
	return ca, leaf
})

var fuzzProtocols = []starttls.Protocol{starttls.SMTP, starttls.IMAP, starttls.POP3}

// fuzzPeerMode is how the fake peer's connection ends after its script.
type fuzzPeerMode int

const (
	// fuzzHalfClose: a loopback TCP peer shuts down its sending side and
	// keeps reading, like a real peer whose script has run out: the library
	// reads every byte, then EOF, and its writes still succeed.
	fuzzHalfClose fuzzPeerMode = iota
	// fuzzPipeClose: a net.Pipe peer closes both directions at once, so the
	// library's next read or write fails wherever it is.
	fuzzPipeClose
)

// fuzzSelect takes the protocol and the peer mode from the first byte:
// the low values pick the protocol, the next bit the mode.
func fuzzSelect(data []byte) (starttls.Protocol, fuzzPeerMode, []byte) {
	if len(data) == 0 {
		return starttls.SMTP, fuzzHalfClose, data
	}
	b := int(data[0])
	return fuzzProtocols[b%len(fuzzProtocols)], fuzzPeerMode(b / len(fuzzProtocols) % 2), data[1:]
}

// fuzzSep separates a script's chunks. 0xFF never occurs in the mail
// protocols' text and rarely in the TLS record headers a script may fake.
const fuzzSep = "\xff"

// fuzzSeed encodes a seed: selector byte, then the script's chunks.
func fuzzSeed(proto int, mode fuzzPeerMode, chunks ...string) []byte {
	return append([]byte{byte(proto + int(mode)*len(fuzzProtocols))}, strings.Join(chunks, fuzzSep)...)
}

// fuzzIdle is how long a fuzzing peer waits for the library before it
// sends its next chunk anyway. The pinned-script tests use 0 (wait for the
// library only) so that their outcome does not depend on timing.
const fuzzIdle = 20 * time.Millisecond

// fuzzLoopback is one listener per process for the TCP peers.
var fuzzLoopback = sync.OnceValues(func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") })

// fuzzPeer returns the library's end of a connection whose other end plays
// a script: data split at fuzzSep into chunks, each sent when the library
// has sent something (a greeting, a command, a TLS hello) — the first at
// once when first is set (a server speaks first) — and after the last the
// peer ends as mode says and drains what the library still sends until it
// closes. Without separators a server script is "write the bytes, then
// close". With idle > 0 a chunk also goes out after idle without news
// from the library (both sides waiting would otherwise last a whole
// phase timeout). finished waits, bounded, for the peer to stop.
func fuzzPeer(t *testing.T, mode fuzzPeerMode, first bool, idle time.Duration, data []byte) (net.Conn, func(who string)) {
	t.Helper()
	var local, remote net.Conn
	switch mode {
	case fuzzPipeClose:
		local, remote = net.Pipe()
	default:
		l, err := fuzzLoopback()
		if err != nil {
			t.Fatal(err)
		}
		accepted := make(chan net.Conn, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				c = nil
			}
			accepted <- c
		}()
		local, err = net.DialTimeout("tcp", l.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case remote = <-accepted:
		case <-time.After(5 * time.Second):
		}
		if remote == nil {
			local.Close()
			t.Fatal("loopback accept failed")
		}
	}
	_ = remote.SetDeadline(time.Now().Add(10 * time.Second))
	chunks := bytes.Split(data, []byte(fuzzSep))
	trigger := make(chan struct{}, len(chunks)+1)
	readerDone := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		// The reader drains the library's bytes so that its writes never
		// block, and lets the writer go on after each of them.
		defer close(readerDone)
		buf := make([]byte, 4096)
		for {
			n, err := remote.Read(buf)
			if n > 0 {
				select {
				case trigger <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		defer close(writerDone)
		for i, c := range chunks {
			if i > 0 || !first {
				var idleC <-chan time.Time
				if idle > 0 {
					idleC = time.After(idle)
				}
				select {
				case <-trigger:
				case <-idleC:
				case <-readerDone:
					return
				}
			}
			if _, err := remote.Write(c); err != nil {
				return
			}
		}
		if tc, ok := remote.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		} else {
			_ = remote.Close()
		}
	}()
	return local, func(who string) {
		t.Helper()
		timeout := time.After(5 * time.Second)
		for _, ch := range []chan struct{}{readerDone, writerDone} {
			select {
			case <-ch:
			case <-timeout:
				t.Fatalf("%s still running after the library returned", who)
			}
		}
		_ = remote.Close()
	}
}

// fuzzScript is a seed of a dialogue fuzz target: the protocol's index in
// fuzzSelect's table and the chunks the scripted peer sends or expects.
type fuzzScript struct {
	proto  int
	chunks []string
}

// fuzzDialogue seeds f with every script in both peer modes (and an empty
// input), then fuzzes run against the scripted peer that fuzzSelect decodes.
func fuzzDialogue(f *testing.F, run func(*testing.T, starttls.Protocol, fuzzPeerMode, time.Duration, []byte) error, seeds []fuzzScript) {
	for _, s := range seeds {
		f.Add(fuzzSeed(s.proto, fuzzHalfClose, s.chunks...))
		f.Add(fuzzSeed(s.proto, fuzzPipeClose, s.chunks...))
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		proto, mode, script := fuzzSelect(data)
		run(t, proto, mode, fuzzIdle, script)
	})
}

// FuzzClientDialogue runs the client against a scripted fake server (see
// fuzzPeer). Whatever the script, the client must return in time, without
// panicking, with a *ProtocolError, and never report success: it is not
// opportunistic, and no script can complete a TLS handshake with a
// certificate from a CA made for this run.
func FuzzClientDialogue(f *testing.F) {
	const smtp, imap, pop3 = 0, 1, 2
	fuzzDialogue(f, fuzzClientRun, []fuzzScript{
		{smtp, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 2.0.0 go ahead\r\n"}},
		{smtp, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n", "\x16\x03\x03\x00\x05hello"}},
		{smtp, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n", "\x15\x03\x03\x00\x02\x02\x28"}},
		{smtp, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n220 injected\r\n"}},
		{smtp, []string{"220 mx ESMTP\r\n", "250-mx\r\n250-PIPELINING\r\n250 SIZE 1000\r\n"}},
		{smtp, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "454 4.7.0 TLS not available\r\n"}},
		{smtp, []string{"220-mx\r\n220 ESMTP\r\n", "250-mx\r\n250-STARTTLS\r\n250 8BITMIME\r\n", "220 ok\r\n"}},
		{smtp, []string{"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n"}},
		{smtp, []string{"220 mx\n", "250 mx\n250 STARTTLS\n"}},
		{smtp, []string{"554 go away\r\n"}},
		{smtp, []string{"220 " + strings.Repeat("x", 9000) + "\r\n"}},
		{smtp, []string{"220 mx\r\n", strings.Repeat("250-x\r\n", 600)}},
		{imap, []string{"* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n", "a1 OK STARTTLS go\r\n"}},
		{imap, []string{"* OK ready\r\n", "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n", "a2 OK begin TLS\r\n"}},
		{imap, []string{"* OK ready\r\n", "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n", "a2 NO no tls\r\n"}},
		{imap, []string{"* OK ready\r\n", "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n", "+ go\r\n"}},
		{imap, []string{"* OK ready\r\n", "* CAPABILITY {17}\r\nIMAP4rev1 STARTTLS\r\na1 OK x\r\n", "a2 OK\r\n"}},
		{imap, []string{"* OK ready\r\n", "* CAPABILITY {99999999}\r\n"}},
		{imap, []string{"* PREAUTH hi\r\n"}},
		{imap, []string{"* BYE bye\r\n"}},
		{pop3, []string{"+OK ready\r\n", "+OK capa\r\nSTLS\r\n.\r\n", "+OK begin TLS\r\n"}},
		{pop3, []string{"+OK ready\r\n", "+OK\r\nUSER\r\n.\r\n"}},
		{pop3, []string{"+OK ready\r\n", "+OK\r\nSTLS\r\n.\r\n", "-ERR no\r\n"}},
		{pop3, []string{"+OK ready\r\n", "-ERR no CAPA\r\n"}},
		{pop3, []string{"-ERR busy\r\n"}},
		{pop3, []string{"+OK ready\r\n", "+OK\r\nSTLS\r\n..dot\r\n.\r\n", "+OK\r\n+OK again\r\n"}},
	})
}

// fuzzClientRun runs starttls.Client against fuzzPeer, checks the
// invariants that hold for any script, and returns the client's error.
func fuzzClientRun(t *testing.T, proto starttls.Protocol, mode fuzzPeerMode, idle time.Duration, script []byte) error {
	t.Helper()
	ca, _ := fuzzPKI()
	conn, finished := fuzzPeer(t, mode, true, idle, script)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cfg := &starttls.Config{
		TLSConfig:    &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost"},
		PhaseTimeout: 200 * time.Millisecond,
	}
	start := time.Now()
	c, err := starttls.Client(ctx, conn, proto, cfg)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("%s client took %v", proto, d)
	}
	if err == nil {
		if c == nil || !c.Upgraded() {
			t.Fatalf("%s client: nil error without TLS (not opportunistic) on script %q", proto, script)
		}
		t.Fatalf("%s client: TLS upgrade succeeded against a fake server with script %q", proto, script)
	}
	if c != nil {
		t.Fatalf("%s client: non-nil Conn with error %v", proto, err)
	}
	var pe *starttls.ProtocolError
	if !errors.As(err, &pe) {
		t.Fatalf("%s client: error %v (%T) is not a *ProtocolError", proto, err, err)
	}
	if pe.Phase == starttls.PhasePostTLS {
		t.Fatalf("%s client: reached %s without TLS: %v", proto, pe.Phase, err)
	}
	_ = conn.Close() // already closed by Client on error; harmless
	finished(string(proto) + " fake server")
	return err
}

// FuzzServerDialogue plays a scripted client (see fuzzPeer) against
// Accept. A script is never a TLS client, so Accept must fail, in time,
// without panicking.
func FuzzServerDialogue(f *testing.F) {
	const smtp, imap, pop3 = 0, 1, 2
	fuzzDialogue(f, fuzzServerRun, []fuzzScript{
		{smtp, []string{"EHLO client\r\n", "STARTTLS\r\n"}},
		{smtp, []string{"EHLO c\r\n", "STARTTLS\r\n", "\x16\x03\x01\x00\x04abcd"}},
		{smtp, []string{"EHLO c\r\n", "STARTTLS\r\nMAIL FROM:<a@b>\r\n"}},
		{smtp, []string{"EHLO c\r\nSTARTTLS\r\n"}},
		{smtp, []string{"HELO c\r\n", "QUIT\r\n"}},
		{smtp, []string{"EHLO c\r\n", "AUTH PLAIN AGVuAHBhc3M=\r\n", "MAIL FROM:<a@b>\r\n"}},
		{smtp, []string{"EHLO c\n", "STARTTLS\n"}},
		{smtp, []string{"NOOP\r\n", "RSET\r\n", "EHLO c\r\n", "STARTTLS\r\n"}},
		{smtp, []string{strings.Repeat("NOOP\r\n", 60)}},
		{smtp, []string{"EHLO " + strings.Repeat("a", 9000) + "\r\n"}},
		{imap, []string{"a1 CAPABILITY\r\n", "a2 STARTTLS\r\n"}},
		{imap, []string{"a1 STARTTLS\r\n", "\x16\x03\x01\x00\x00"}},
		{imap, []string{"a1 STARTTLS\r\na2 LOGIN u p\r\n"}},
		{imap, []string{"a1 LOGIN {3}\r\n", "abc\r\n"}},
		{imap, []string{"a1 NOOP\r\n", "a2 LOGOUT\r\n"}},
		{imap, []string{"* BAD\r\n"}},
		{pop3, []string{"CAPA\r\n", "STLS\r\n"}},
		{pop3, []string{"STLS\r\nUSER u\r\n"}},
		{pop3, []string{"USER u\r\n", "PASS p\r\n"}},
		{pop3, []string{"QUIT\r\n"}},
		{pop3, []string{"STLS\r\n", "\x80\x2e\x01\x03\x01"}},
	})
}

// fuzzServerRun runs starttls.Accept against fuzzPeer and checks that it
// fails in time with a nil Conn.
func fuzzServerRun(t *testing.T, proto starttls.Protocol, mode fuzzPeerMode, idle time.Duration, script []byte) error {
	t.Helper()
	_, leaf := fuzzPKI()
	conn, finished := fuzzPeer(t, mode, false, idle, script)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	cfg := &starttls.ServerConfig{
		TLSConfig:    &tls.Config{Certificates: []tls.Certificate{leaf.TLS}},
		PhaseTimeout: 200 * time.Millisecond,
	}
	start := time.Now()
	c, err := starttls.Accept(ctx, conn, proto, cfg)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("%s Accept took %v", proto, d)
	}
	if err == nil {
		t.Fatalf("%s Accept succeeded (upgraded=%v) on non-TLS script %q", proto, c != nil && c.Upgraded(), script)
	}
	if c != nil {
		t.Fatalf("%s Accept: non-nil Conn with error %v", proto, err)
	}
	_ = conn.Close()
	finished(string(proto) + " fake client")
	return err
}

// TestFuzzHarnessClientScripts pins what the fuzz harness reaches:
// complete scripts get as far as the handshake, broken ones fail in the
// right phase with the right condition.
func TestFuzzHarnessClientScripts(t *testing.T) {
	for _, tc := range []struct {
		proto  starttls.Protocol
		mode   fuzzPeerMode
		chunks []string
		phase  starttls.Phase
		cond   error
	}{
		{starttls.SMTP, fuzzHalfClose, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go ahead\r\n"}, starttls.PhaseHandshake, starttls.ErrHandshake},
		{starttls.SMTP, fuzzPipeClose, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go ahead\r\n"}, starttls.PhaseHandshake, nil},
		{starttls.SMTP, fuzzHalfClose, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n", "\x15\x03\x03\x00\x02\x02\x28"}, starttls.PhaseHandshake, starttls.ErrHandshake},
		{starttls.SMTP, fuzzHalfClose, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 SIZE 1\r\n"}, starttls.PhaseCaps, starttls.ErrNotOffered},
		{starttls.SMTP, fuzzHalfClose, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "454 no\r\n"}, starttls.PhaseStartTLS, starttls.ErrRefused},
		{starttls.SMTP, fuzzHalfClose, []string{"220 mx ESMTP\r\n", "250-mx\r\n250 STARTTLS\r\n", "220 go\r\n220 injected\r\n"}, starttls.PhaseStartTLS, starttls.ErrInjection},
		{starttls.SMTP, fuzzHalfClose, []string{"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n"}, starttls.PhaseStartTLS, starttls.ErrClosed},
		{starttls.SMTP, fuzzHalfClose, []string{"220 mx ESMTP\r\n250-mx\r\n250 STARTTLS\r\n220 go ahead\r\n"}, starttls.PhaseStartTLS, starttls.ErrInjection},
		{starttls.SMTP, fuzzHalfClose, []string{"220 " + strings.Repeat("x", 9000) + "\r\n"}, starttls.PhaseGreeting, starttls.ErrLineTooLong},
		{starttls.SMTP, fuzzHalfClose, []string{"hello\r\n"}, starttls.PhaseGreeting, starttls.ErrProtocol},
		{starttls.SMTP, fuzzHalfClose, nil, starttls.PhaseGreeting, starttls.ErrClosed},
		{starttls.IMAP, fuzzHalfClose, []string{"* OK ready\r\n", "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n", "a2 OK begin\r\n"}, starttls.PhaseHandshake, nil},
		{starttls.IMAP, fuzzHalfClose, []string{"* PREAUTH hi\r\n"}, starttls.PhaseGreeting, starttls.ErrPreauth},
		{starttls.IMAP, fuzzHalfClose, []string{"* OK ready\r\n", "* CAPABILITY IMAP4rev1 STARTTLS\r\na1 OK done\r\n", "a2 NO\r\n"}, starttls.PhaseStartTLS, starttls.ErrRefused},
		{starttls.POP3, fuzzHalfClose, []string{"+OK ready\r\n", "+OK\r\nSTLS\r\n.\r\n", "+OK begin\r\n"}, starttls.PhaseHandshake, nil},
		{starttls.POP3, fuzzPipeClose, []string{"+OK ready\r\n", "+OK\r\nSTLS\r\n.\r\n", "+OK begin\r\n"}, starttls.PhaseHandshake, nil},
		{starttls.POP3, fuzzHalfClose, []string{"+OK ready\r\n", "+OK\r\nUSER\r\n.\r\n"}, starttls.PhaseCaps, starttls.ErrNotOffered},
	} {
		script := []byte(strings.Join(tc.chunks, fuzzSep))
		err := fuzzClientRun(t, tc.proto, tc.mode, 0, script)
		var pe *starttls.ProtocolError
		name := fmt.Sprintf("%s %q", tc.proto, script[:min(len(script), 60)])
		if !errors.As(err, &pe) || pe.Phase != tc.phase {
			t.Errorf("%s: %v; want phase %s", name, err, tc.phase)
			continue
		}
		if tc.cond != nil && !errors.Is(err, tc.cond) {
			t.Errorf("%s: %v; want %v", name, err, tc.cond)
		}
	}
}

// TestFuzzHarnessServerScripts: a client that asks for STARTTLS and then
// is no TLS client fails at the handshake; command injection is caught
// before it.
func TestFuzzHarnessServerScripts(t *testing.T) {
	for _, tc := range []struct {
		proto  starttls.Protocol
		chunks []string
		cond   error // nil: a handshake failure
	}{
		{starttls.SMTP, []string{"EHLO c\r\n", "STARTTLS\r\n"}, nil},
		{starttls.SMTP, []string{"EHLO c\r\n", "STARTTLS\r\n", "\x16\x03\x01\x00\x04abcd"}, nil},
		{starttls.SMTP, []string{"EHLO c\r\n", "STARTTLS\r\nMAIL FROM:<a@b>\r\n"}, starttls.ErrInjection},
		{starttls.SMTP, []string{"EHLO " + strings.Repeat("a", 9000) + "\r\n"}, starttls.ErrLineTooLong},
		{starttls.IMAP, []string{"a1 STARTTLS\r\n"}, nil},
		{starttls.IMAP, []string{"a1 STARTTLS\r\na2 LOGIN u p\r\n"}, starttls.ErrInjection},
		{starttls.POP3, []string{"STLS\r\n"}, nil},
		{starttls.POP3, []string{"STLS\r\nUSER u\r\n"}, starttls.ErrInjection},
	} {
		script := []byte(strings.Join(tc.chunks, fuzzSep))
		name := fmt.Sprintf("%s %q", tc.proto, script[:min(len(script), 60)])
		// A client closing at once fails somewhere; fuzzServerRun checks that.
		_ = fuzzServerRun(t, tc.proto, fuzzPipeClose, 0, script)
		err := fuzzServerRun(t, tc.proto, fuzzHalfClose, 0, script)
		if tc.cond != nil {
			if !errors.Is(err, tc.cond) {
				t.Errorf("%s: %v; want %v", name, err, tc.cond)
			}
			continue
		}
		var pe *starttls.ProtocolError
		if !errors.As(err, &pe) || pe.Phase != starttls.PhaseHandshake {
			t.Errorf("%s: %v; want a handshake failure", name, err)
		}
	}
}
