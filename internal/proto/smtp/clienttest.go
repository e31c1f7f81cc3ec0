package smtp

import (
	"encoding/base64"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// SMTP as clienttest's scenario server speaks it before TLS (submission
// and LMTP are played as SMTP).
var clientTest = &registry.ClientTest{
	Line: &registry.CTLine{
		Greeting:    "220 mail.test ESMTP clienttest\r\n",
		CapsVerbs:   []string{"EHLO", "HELO", "LHLO"},
		Caps:        ctCaps,
		UpgradeVerb: "STARTTLS",
		GoAhead:     func(string) string { return "220 2.0.0 Ready to start TLS\r\n" },
		OK:          func(_, verb string) string { return ctOK(verb) },
		Quit:        []string{"QUIT"},
		Refusals: map[string]string{
			"454": "454 4.7.0 TLS not available due to temporary reason\r\n",
			"502": "502 5.5.2 Command not implemented\r\n",
			"500": "500 5.5.1 Command unrecognized\r\n",
			"501": "501 5.5.4 Syntax error\r\n",
			"354": "354 Go ahead\r\n",
			"221": "221 2.0.0 Bye\r\n",
		},
		NoTLS:      "502",
		Inject:     func(string) string { return "250-mail.test\r\n250 AUTH PLAIN LOGIN\r\n" },
		Mechanisms: []string{"AUTH PLAIN LOGIN CRAM-MD5"},
	},
	Leaks: []string{"AUTH", "MAIL", "RCPT", "DATA", "BDAT"},
	Scenarios: []registry.CTScenario{
		{Name: "legacy-downgrade", Kind: "strip", Answers: map[string]string{"EHLO": "502 5.5.2 EHLO not implemented\r\n"},
			Summary: "EHLO is refused, leaving only HELO (no extensions, no STARTTLS)",
			Expect:  "abort without sending mail or credentials"},
		{Name: "spoof-error-escape", Kind: "spoof", RefuseText: "454 4.7.0 " + registry.CTEscapeBait + "\r\n",
			Summary: "STARTTLS is answered by 454 with terminal escape sequences",
			Expect:  "abort without credentials; never reproduce the raw ESC byte in its output"},
	},
	LoginLine: "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret")),
}

// ctCaps answers EHLO and LHLO with the extensions, HELO with none.
func ctCaps(_, verb string, offer bool, extra []string) string {
	if verb == "HELO" {
		return "250 mail.test\r\n"
	}
	lines := []string{"mail.test", "PIPELINING", "SIZE 10240000", "8BITMIME"}
	lines = append(lines, extra...)
	if offer {
		lines = append(lines, "STARTTLS")
	}
	return strings.Join(Multiline(250, lines), "\r\n") + "\r\n"
}

func ctOK(verb string) string {
	switch verb {
	case "NOOP", "RSET":
		return "250 2.0.0 OK\r\n"
	case "QUIT":
		return "221 2.0.0 Bye\r\n"
	case "AUTH":
		return "535 5.7.8 Authentication credentials invalid\r\n"
	case "MAIL", "RCPT":
		return "250 2.1.0 OK\r\n"
	case "DATA":
		return "554 5.5.1 No valid recipients\r\n"
	}
	return "502 5.5.2 Command not recognized\r\n"
}
