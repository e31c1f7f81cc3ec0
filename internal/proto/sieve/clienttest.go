package sieve

import (
	"bufio"
	"encoding/base64"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// ManageSieve as clienttest's scenario server speaks it before TLS, and
// what it adds inside TLS in front of serve's application (serve.go):
// the capabilities re-sent unasked, NOOP's TAG and literals folded into
// quoted strings.
var clientTest = &registry.ClientTest{
	Line: &registry.CTLine{
		CapsInGreeting: true,
		CapsVerbs:      []string{"CAPABILITY"},
		Caps:           ctCaps,
		UpgradeVerb:    "STARTTLS",
		GoAhead:        func(string) string { return "OK \"Begin TLS negotiation now\"\r\n" },
		OK: func(_, verb string) string {
			switch verb {
			case "NOOP":
				return "OK \"NOOP completed\"\r\n"
			case "LOGOUT":
				return "OK \"Logout completed\"\r\n"
			case "AUTHENTICATE":
				return "NO \"Authentication failed\"\r\n"
			}
			return "NO \"Command not implemented\"\r\n"
		},
		Quit: []string{"LOGOUT"},
		Refusals: map[string]string{
			"NO":  "NO \"TLS not available\"\r\n",
			"BYE": "BYE \"going away\"\r\n",
		},
		NoTLS: "NO",
		// The forged answer is the capability list the client awaits inside TLS.
		Inject:       func(string) string { return ctCapsAfterTLS },
		Mechanisms:   []string{`"SASL" "PLAIN LOGIN"`},
		CapsAfterTLS: ctCapsAfterTLS,
		Wrap:         func(c net.Conn) net.Conn { return &ctConn{Conn: c, br: bufio.NewReader(c)} },
	},
	Leaks:     []string{"AUTHENTICATE", "PUTSCRIPT", "GETSCRIPT", "LISTSCRIPTS"},
	LoginLine: `AUTHENTICATE "PLAIN" "` + base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret")) + `"`,
}

func ctCaps(_, _ string, offer bool, extra []string) string {
	lines := []string{`"IMPLEMENTATION" "clienttest"`, `"SIEVE" "fileinto vacation"`}
	for _, e := range extra {
		if !strings.HasPrefix(e, `"`) {
			e = strconv.Quote(e)
		}
		lines = append(lines, e)
	}
	if offer {
		lines = append(lines, `"STARTTLS"`)
	}
	return strings.Join(append(lines, `"VERSION" "1.0"`, `OK "clienttest ready"`), "\r\n") + "\r\n"
}

const ctCapsAfterTLS = `"IMPLEMENTATION" "clienttest"` + "\r\n" + `"SASL" "PLAIN"` + "\r\n" +
	`"SIEVE" "fileinto vacation"` + "\r\n" + `"VERSION" "1.0"` + "\r\n" + `OK "TLS negotiation successful"` + "\r\n"

// ctConn stands between the client and the serve application for
// ManageSieve and does two things that application does not: it answers
// "NOOP <tag>" with the TAG response code (RFC 5804 §2.11) — clients such
// as sieve-connect send NOOP "STARTTLS-RESYNC-CAPA" right after TLS and
// wait for that tag — and it turns a client's non-synchronising literal
// ({n+}, §4) into a quoted string, the only form the application parses.
type ctConn struct {
	net.Conn
	br      *bufio.Reader
	pending []byte
}

func (c *ctConn) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		line, err := c.br.ReadString('\n')
		if err == nil {
			line, err = c.foldLiterals(line)
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		if err == nil && strings.EqualFold(verb, "NOOP") && strings.HasPrefix(arg, `"`) {
			if _, err := io.WriteString(c.Conn, "OK (TAG "+arg+") \"Done\"\r\n"); err != nil {
				return 0, err
			}
			continue
		}
		c.pending = []byte(line)
		if err != nil {
			if len(line) == 0 {
				return 0, err
			}
			break
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// foldLiterals replaces each trailing {n+} of line by the n bytes that
// follow, quoted, and appends the rest of the command line.
func (c *ctConn) foldLiterals(line string) (string, error) {
	for i := 0; i < 16; i++ {
		body := strings.TrimRight(line, "\r\n")
		open := strings.LastIndexByte(body, '{')
		if open < 0 || !strings.HasSuffix(body, "+}") {
			return line, nil
		}
		n, err := strconv.Atoi(body[open+1 : len(body)-2])
		if err != nil || n < 0 || n > 64<<10 {
			return line, nil
		}
		lit := make([]byte, n)
		if _, err := io.ReadFull(c.br, lit); err != nil {
			return line, err
		}
		rest, err := c.br.ReadString('\n')
		if err != nil {
			return line, err
		}
		line = body[:open] + strconv.Quote(string(lit)) + rest
	}
	return line, nil
}
