package proxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

// reupgradeCase is one protocol as the client sees it inside TLS.
type reupgradeCase struct {
	name    string
	proto   starttls.Protocol
	backend string // the fake backend's protocol
	mode    Mode
	upgrade string // the upgrade command (as sent and as the backend would record it)
	refusal string // the proxy's answer
	noop    string // a command the backend answers with one line
	noopOK  string
	slow    string // a command the backend answers late
	slowOK  string
	caps    string // the capability command; its response ends with capsEnd
	capsEnd string
	hidden  string // the capability the backend advertises and the client must not see
}

func reupgradeCases() []reupgradeCase {
	smtp := reupgradeCase{name: "smtp", proto: starttls.SMTP, backend: "smtp", mode: Terminate,
		upgrade: "STARTTLS", refusal: "503 5.5.1 TLS already active",
		noop: "NOOP", noopOK: "250 ok NOOP", slow: "SLOW", slowOK: "250 ok SLOW",
		caps: "EHLO client.test", capsEnd: "250 ", hidden: "STARTTLS"}
	imap := reupgradeCase{name: "imap", proto: starttls.IMAP, backend: "imap", mode: Terminate,
		upgrade: "a1 STARTTLS", refusal: "a1 BAD TLS already active",
		noop: "a2 NOOP", noopOK: "a2 OK NOOP", // IMAP is tagged: no ordering to check
		caps: "c1 CAPABILITY", capsEnd: "c1 ", hidden: "STARTTLS"}
	pop3 := reupgradeCase{name: "pop3", proto: starttls.POP3, backend: "pop3", mode: Terminate,
		upgrade: "STLS", refusal: "-ERR TLS already active",
		noop: "NOOP", noopOK: "+OK NOOP", slow: "SLOW", slowOK: "+OK SLOW",
		caps: "CAPA", capsEnd: ".", hidden: "STLS"}
	smtps, imaps, pop3s := smtp, imap, pop3
	smtps.name, smtps.proto, smtps.mode = "smtps implicit", starttls.SMTPS, Implicit
	imaps.name, imaps.proto, imaps.mode = "imaps implicit", starttls.IMAPS, Implicit
	pop3s.name, pop3s.proto, pop3s.mode = "pop3s implicit", starttls.POP3S, Implicit
	return []reupgradeCase{smtp, imap, pop3, smtps, imaps, pop3s}
}

// dialReupgrade starts the backend and the proxy and returns an upgraded client.
func dialReupgrade(t *testing.T, pki *testPKI, tc reupgradeCase) (*starttls.Conn, *fakeBackend) {
	t.Helper()
	be := startBackend(t, tc.backend, false)
	l := terminateListener(t, pki, tc.proto, be.addr)
	l.Mode = tc.mode
	srv := startProxy(t, Options{}, l)
	c := dialProxy(t, tc.proto, srv.Addr(0).String(), pki)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second)) // a wrong filter fails, not hangs
	return c, be
}

func readLines(t *testing.T, c *starttls.Conn, n int) []string {
	t.Helper()
	var got []string
	for i := 0; i < n; i++ {
		l, err := c.ReadLine()
		if err != nil {
			t.Fatalf("after %q: %v", got, err)
		}
		got = append(got, l)
	}
	return got
}

func expectLines(t *testing.T, c *starttls.Conn, want ...string) {
	t.Helper()
	if got := readLines(t, c, len(want)); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// The upgrade command sent again inside TLS is answered by the proxy (in
// its turn among the backend's replies, when it is pipelined), never
// reaches the backend, and the session goes on.
func TestRepeatedUpgradeAnsweredByProxy(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range reupgradeCases() {
		t.Run(tc.name, func(t *testing.T) {
			c, be := dialReupgrade(t, pki, tc)
			// Alone, then the next command.
			io.WriteString(c, tc.upgrade+"\r\n")
			expectLines(t, c, tc.refusal)
			io.WriteString(c, tc.noop+"\r\n")
			expectLines(t, c, tc.noopOK)
			// Pipelined in one write, after a command the backend answers late.
			if tc.slow != "" {
				io.WriteString(c, tc.slow+"\r\n"+tc.upgrade+"\r\n"+tc.noop+"\r\n")
				expectLines(t, c, tc.slowOK, tc.refusal, tc.noopOK)
			} else {
				io.WriteString(c, tc.upgrade+"\r\n"+tc.noop+"\r\n")
				expectLines(t, c, tc.refusal, tc.noopOK)
			}
			got := be.received()
			noops := 0
			for _, l := range got {
				if strings.EqualFold(l, tc.upgrade) {
					t.Errorf("the backend saw %q: %q", tc.upgrade, got)
				}
				if l == tc.noop {
					noops++
				}
			}
			if noops != 2 {
				t.Errorf("the backend saw %d %q, want 2: %q", noops, tc.noop, got)
			}
		})
	}
}

// Capability responses relayed from the backend inside TLS never
// advertise the upgrade.
func TestCapabilitiesWithoutUpgrade(t *testing.T) {
	pki := newTestPKI(t)
	for _, tc := range reupgradeCases() {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := dialReupgrade(t, pki, tc)
			if c.Capabilities.Has(tc.hidden) {
				t.Errorf("post-TLS capabilities %q", c.Capabilities)
			}
			io.WriteString(c, tc.caps+"\r\n")
			var got []string
			for i := 0; i < 20; i++ {
				l, err := c.ReadLine()
				if err != nil {
					t.Fatalf("after %q: %v", got, err)
				}
				got = append(got, l)
				if strings.HasPrefix(l, tc.capsEnd) || l == tc.capsEnd {
					break
				}
			}
			if len(got) < 2 {
				t.Fatalf("capability response %q", got)
			}
			for _, l := range got {
				for _, w := range strings.Fields(strings.Trim(strings.ToUpper(l), "[]")) {
					if strings.Trim(w, "[]") == tc.hidden {
						t.Errorf("%s advertised inside TLS: %q", tc.hidden, got)
					}
				}
			}
		})
	}
}

// What only looks like the upgrade command passes to the backend: an SMTP
// message body line, a SASL response, a BDAT chunk, an IMAP literal.
func TestUpgradeLookalikesPass(t *testing.T) {
	pki := newTestPKI(t)
	t.Run("smtp", func(t *testing.T) {
		c, be := dialReupgrade(t, pki, reupgradeCases()[0])
		body := "STARTTLS\r\nx\r\n"
		sum := sha256.Sum256([]byte(body))
		io.WriteString(c, "DATA\r\n")
		expectLines(t, c, "354 go ahead")
		// The end of the message, then the upgrade command pipelined.
		io.WriteString(c, body+".\r\nSTARTTLS\r\nNOOP\r\n")
		expectLines(t, c, fmt.Sprintf("250 %d %s", len(body), hex.EncodeToString(sum[:])),
			"503 5.5.1 TLS already active", "250 ok NOOP")
		io.WriteString(c, "AUTH PLAIN\r\n")
		expectLines(t, c, "334 ")
		io.WriteString(c, "STARTTLS\r\n")
		expectLines(t, c, "235 2.7.0 ok")
		io.WriteString(c, "BDAT 10 LAST\r\nSTARTTLS\r\nSTARTTLS\r\nNOOP\r\n")
		expectLines(t, c, "250 10 octets", "503 5.5.1 TLS already active", "250 ok NOOP")
		got := be.received()
		want := []string{"DATA", "NOOP", "AUTH PLAIN", "STARTTLS", "BDAT 10 LAST", "chunk: STARTTLS\r\n", "NOOP"}
		if strings.Join(got[1:], "|") != strings.Join(want, "|") { // after the client's EHLO
			t.Errorf("backend got %q\nwant EHLO then %q", got, want)
		}
	})
	t.Run("lmtp", func(t *testing.T) {
		// One reply per recipient to the message: the proxy's comes after both.
		tc := reupgradeCases()[0]
		tc.proto, tc.backend = starttls.LMTP, "lmtp"
		c, be := dialReupgrade(t, pki, tc)
		body := "STARTTLS\r\n"
		sum := sha256.Sum256([]byte(body))
		ok := fmt.Sprintf("250 %d %s", len(body), hex.EncodeToString(sum[:]))
		io.WriteString(c, "MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n")
		expectLines(t, c, "250 ok MAIL FROM:<a@b>", "250 ok RCPT TO:<c@d>", "250 ok RCPT TO:<e@f>", "354 go ahead")
		io.WriteString(c, body+".\r\nSTARTTLS\r\nNOOP\r\n")
		expectLines(t, c, ok, ok, "503 5.5.1 TLS already active", "250 ok NOOP")
		for _, l := range be.received() {
			if l == "STARTTLS" {
				t.Errorf("the backend saw STARTTLS: %q", be.received())
			}
		}
	})
	t.Run("imap", func(t *testing.T) {
		c, be := dialReupgrade(t, pki, reupgradeCases()[1])
		lit := "a9 STARTTLS\r\n"
		// A synchronising literal: the proxy must pass the command line on
		// before the client sends the literal.
		io.WriteString(c, fmt.Sprintf("a3 APPEND INBOX {%d}\r\n", len(lit)))
		expectLines(t, c, "+ go ahead")
		io.WriteString(c, lit+"\r\na4 STARTTLS\r\n")
		// Tagged responses: in either order.
		got := readLines(t, c, 2)
		sort.Strings(got)
		if want := []string{"a3 OK APPEND INBOX", "a4 BAD TLS already active"}; strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("got %q, want %q", got, want)
		}
		got = be.received()
		if n := len(got); n < 2 || got[n-1] != "literal: "+lit {
			t.Errorf("backend got %q", got)
		}
	})
}
