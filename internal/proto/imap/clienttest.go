package imap

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// IMAP as clienttest's scenario server speaks it before TLS, with the
// scenarios only IMAP has: PREAUTH, an early tagged OK, referrals
// (RFC 2221) and an [ALERT] carrying terminal escapes.
func clientTest() *registry.ClientTest {
	ct := &registry.ClientTest{
		Line: &registry.CTLine{
			Greeting:    "* OK mail.test IMAP4rev1 clienttest\r\n",
			CapsVerbs:   []string{"CAPABILITY"},
			Caps:        ctCaps,
			UpgradeVerb: "STARTTLS",
			GoAhead:     func(tag string) string { return tag + " OK Begin TLS negotiation now\r\n" },
			OK:          func(tag, _ string) string { return tag + " OK done\r\n" },
			Quit:        []string{"LOGOUT"},
			Farewell:    func(tag string) string { return "* BYE\r\n" + tag + " OK LOGOUT completed\r\n" },
			Refusals: map[string]string{
				"NO":  "{tag} NO TLS not available\r\n",
				"BAD": "{tag} BAD Unknown command\r\n",
				"BYE": "* BYE going away\r\n",
			},
			NoTLS: "BAD",
			Inject: func(tag string) string {
				return "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + registry.CTNextTag(tag) + " OK CAPABILITY completed\r\n"
			},
			Tagged:     true,
			Mechanisms: []string{"AUTH=PLAIN", "AUTH=LOGIN"},
		},
		Leaks: []string{"LOGIN", "AUTHENTICATE", "SELECT", "EXAMINE", "LIST", "LSUB", "FETCH", "APPEND", "STATUS"},
		Scenarios: []registry.CTScenario{
			{Name: "preauth", Kind: "strip",
				Greeting: "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in as alice\r\n",
				Summary:  "an IMAP PREAUTH greeting: the session starts authenticated, STARTTLS is impossible",
				Expect:   "abort without selecting or fetching anything"},
			{Name: "early-tagged-ok", Kind: "early-ok", EarlyOK: true,
				Summary: "a tagged OK for the predicted STARTTLS tag arrives before the client sends STARTTLS",
				Expect:  "treat it as a protocol error, not as the go-ahead"},
		},
		Referral:  &registry.CTReferral{Greeting: "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] referred server ready\r\n", Answer: ctReferred},
		LoginLine: "L1 LOGIN user secret",
	}
	// The greeting sends the client to a second server, under the
	// attacker's control, that offers no STARTTLS.
	for _, r := range []struct{ name, greeting string }{
		{"referral-ok", "* OK [REFERRAL imap://user@{referral}/] mailbox moved\r\n"},
		{"referral-bye", "* BYE [REFERRAL imap://user@{referral}/] server moved\r\n"},
	} {
		ct.Scenarios = append(ct.Scenarios, registry.CTScenario{Name: r.name, Kind: "referral",
			Greeting: r.greeting, Referral: true,
			Summary: fmt.Sprintf("the greeting %q refers the client to a second server without STARTTLS", strings.TrimSpace(r.greeting)),
			Expect:  "not follow the referral, or never send LOGIN/AUTHENTICATE to the referred server in plaintext"})
	}
	ct.Scenarios = append(ct.Scenarios, registry.CTScenario{Name: "spoof-alert-escape", Kind: "spoof",
		Greeting: "* OK [ALERT] " + registry.CTEscapeBait + "\r\n",
		Summary:  "the pre-TLS greeting is an [ALERT] with terminal escape sequences; STARTTLS is then honest",
		Expect:   "never reproduce the raw ESC byte in its output (strip or escape control characters)"})
	return ct
}

func ctCaps(tag, _ string, offer bool, extra []string) string {
	c := []string{"IMAP4rev1"}
	if offer {
		c = append(c, "STARTTLS", "LOGINDISABLED")
	}
	c = append(c, extra...)
	return "* CAPABILITY " + strings.Join(c, " ") + "\r\n" + tag + " OK CAPABILITY completed\r\n"
}

// ctReferred is the referred server: AUTH=PLAIN offered, nothing done.
func ctReferred(line string) (string, bool) {
	tag, verb, _ := registry.CTSplit(true, line)
	switch verb {
	case "CAPABILITY":
		return "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n", false
	case "AUTHENTICATE":
		return "+ \r\n", false
	case "LOGOUT":
		return "* BYE\r\n" + tag + " OK bye\r\n", true
	}
	return tag + " NO not here\r\n", false
}
