// Package clienttest plays malicious STARTTLS servers against a client,
// one scenario at a time, and judges from what the client sent whether it
// leaked credentials or mail in plaintext, acted on injected plaintext or
// accepted a bad certificate (the client side of the USENIX Security 2021
// study "Why TLS is better without STARTTLS", and CVE-2011-0411's twin).
package clienttest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/starttls-go/starttls"
)

// Verdict of one scenario.
type Verdict string

// Verdicts.
const (
	Pass         Verdict = "pass"
	Fail         Verdict = "fail"
	Inconclusive Verdict = "inconclusive" // the client never got far enough to tell
)

// kind groups scenarios by how they are judged.
type kind int

const (
	kindControl  kind = iota // an honest server: the client must upgrade and go on
	kindStrip                // TLS not to be had: nothing sensitive may follow in plaintext
	kindInject               // plaintext after the go-ahead: never acted on
	kindTamper               // pre-TLS state: must be asked again inside TLS
	kindEarlyOK              // a go-ahead before the command: never believed
	kindCert                 // a bad certificate: no data inside TLS
	kindReferral             // a referral to a plaintext server: no credentials sent there
	kindSpoof                // terminal escapes in server text: never reproduced on the client's screen
)

// certKind is the certificate a scenario's server presents.
type certKind string

const (
	certGood       certKind = "good"
	certSelfSigned certKind = "self-signed"
	certUnknownCA  certKind = "unknown-ca"
	certWrongName  certKind = "wrong-name"
	certExpired    certKind = "expired"
)

// Scenario is one malicious (or, for the control, honest) server.
type Scenario struct {
	Name    string `json:"name"`
	Summary string `json:"summary"` // what the server does
	Expect  string `json:"expect"`  // what a safe client does
	kind    kind
	plan    plan
	// only limits the scenario to these base protocols (nil: all).
	only []starttls.Protocol
	// lineOnly limits it to the line protocols of personalities: the
	// others have no greeting to garble or no line to cut.
	lineOnly bool
}

// plan is what the scenario server does differently from an honest one.
type plan struct {
	greeting   string   // replaces the greeting
	noOffer    bool     // the upgrade is not listed in capabilities
	extraCaps  []string // added to the pre-TLS capabilities
	mechanisms bool     // advertise plaintext authentication mechanisms
	capsFail   string   // answer to the extended capability query (SMTP EHLO) instead of capabilities
	refuse     string   // refusal key in personality.refusals
	refuseText string   // the answer to the upgrade command, "{tag}" replaced
	inject     bool     // append personality.inject to the go-ahead
	partial    bool     // inject a line without its CRLF
	earlyOK    bool     // append a go-ahead for the predicted tag to the capability reply
	cert       certKind
	// referral starts a second, plaintext-only server; "{referral}" in
	// the greeting becomes its address.
	referral bool
}

// Scenarios lists every scenario for a protocol, the control first; none
// for a protocol clienttest does not speak. Submission and LMTP get SMTP's.
func Scenarios(proto starttls.Protocol) []Scenario {
	base, err := baseOf(proto)
	if err != nil {
		return nil
	}
	d := dialects[base]
	var out []Scenario
	for _, s := range catalogue() {
		if s.only != nil && !slices.Contains(s.only, base) || s.lineOnly && d != nil {
			continue
		}
		if d != nil {
			if s.kind == kindInject && d.noGoAhead {
				continue
			}
			if s.Name == "strip-capability" && d.stripSummary != "" {
				s.Summary = d.stripSummary
			}
		}
		out = append(out, s)
	}
	return out
}

func catalogue() []Scenario {
	// Protocols whose capabilities carry authentication mechanisms.
	mail := []starttls.Protocol{starttls.SMTP, starttls.IMAP, starttls.POP3, starttls.NNTP, starttls.Sieve}
	out := []Scenario{
		{Name: "control", kind: kindControl, plan: plan{cert: certGood},
			Summary: "an honest server offering STARTTLS with a trusted certificate",
			Expect:  "upgrade and carry on inside TLS (if this fails, the run does not count)"},
		{Name: "strip-capability", kind: kindStrip, plan: plan{noOffer: true},
			Summary: "STARTTLS is not advertised (stripped by an attacker)",
			Expect:  "abort without sending credentials or mail"},
		{Name: "strip-mechanisms", kind: kindStrip, only: mail,
			plan:    plan{noOffer: true, mechanisms: true},
			Summary: "no STARTTLS, many plaintext authentication mechanisms advertised",
			Expect:  "abort without authenticating in plaintext"},
		{Name: "inject-after-go-ahead", kind: kindInject, plan: plan{inject: true, cert: certGood},
			Summary: "the go-ahead is followed, in the same segment, by a forged answer to the first command inside TLS",
			Expect:  "abort, or discard the injected bytes and wait for the real answer inside TLS"},
		{Name: "inject-partial-line", kind: kindInject, lineOnly: true, plan: plan{inject: true, partial: true, cert: certGood},
			Summary: "the go-ahead is followed by a fragment of a line without CRLF",
			Expect:  "abort, or discard the fragment"},
		{Name: "tamper-capabilities", kind: kindTamper, only: mail, plan: plan{extraCaps: []string{"X-TAMPERED"}, cert: certGood},
			Summary: "pre-TLS capabilities carry extra, attacker-chosen entries",
			Expect:  "ask for capabilities again inside TLS (ManageSieve: wait for the list the server re-sends) before authenticating"},
		{Name: "malformed-greeting", kind: kindStrip, lineOnly: true, plan: plan{greeting: "hello there\r\n"},
			Summary: "a greeting that does not follow the protocol (CVE-2020-28896 class)",
			Expect:  "abort; TLS enforcement still applies"},
	}
	for _, c := range []struct {
		k    certKind
		what string
	}{{certSelfSigned, "a self-signed certificate"}, {certUnknownCA, "a certificate from an unknown CA"},
		{certWrongName, "a certificate for another name"}, {certExpired, "an expired certificate"}} {
		out = append(out, Scenario{Name: "cert-" + string(c.k), kind: kindCert, plan: plan{cert: c.k},
			Summary: "STARTTLS succeeds, then the server presents " + c.what,
			Expect:  "reject the handshake; send nothing inside TLS"})
	}
	out = append(out,
		Scenario{Name: "legacy-downgrade", kind: kindStrip, only: []starttls.Protocol{starttls.SMTP}, plan: plan{capsFail: "502 5.5.2 EHLO not implemented\r\n"},
			Summary: "EHLO is refused, leaving only HELO (no extensions, no STARTTLS)",
			Expect:  "abort without sending mail or credentials"},
		Scenario{Name: "preauth", kind: kindStrip, only: []starttls.Protocol{starttls.IMAP},
			plan:    plan{greeting: "* PREAUTH [CAPABILITY IMAP4rev1 STARTTLS] logged in as alice\r\n"},
			Summary: "an IMAP PREAUTH greeting: the session starts authenticated, STARTTLS is impossible",
			Expect:  "abort without selecting or fetching anything"},
		Scenario{Name: "early-tagged-ok", kind: kindEarlyOK, only: []starttls.Protocol{starttls.IMAP}, plan: plan{earlyOK: true, cert: certGood},
			Summary: "a tagged OK for the predicted STARTTLS tag arrives before the client sends STARTTLS",
			Expect:  "treat it as a protocol error, not as the go-ahead"},
	)
	// IMAP referrals (RFC 2221): the greeting sends the client to a second
	// server, under the attacker's control, that offers no STARTTLS.
	for _, r := range []struct{ name, greeting string }{
		{"referral-ok", "* OK [REFERRAL imap://user@{referral}/] mailbox moved\r\n"},
		{"referral-bye", "* BYE [REFERRAL imap://user@{referral}/] server moved\r\n"},
	} {
		out = append(out, Scenario{Name: r.name, kind: kindReferral, only: []starttls.Protocol{starttls.IMAP},
			plan:    plan{greeting: r.greeting, referral: true, cert: certGood},
			Summary: fmt.Sprintf("the greeting %q refers the client to a second server without STARTTLS", strings.TrimSpace(r.greeting)),
			Expect:  "not follow the referral, or never send LOGIN/AUTHENTICATE to the referred server in plaintext"})
	}
	// UI spoofing: server text the client may show its user carries
	// terminal escapes (clear the screen, red text, set the window title).
	out = append(out,
		Scenario{Name: "spoof-alert-escape", kind: kindSpoof, only: []starttls.Protocol{starttls.IMAP},
			plan:    plan{greeting: "* OK [ALERT] " + escapeBait + "\r\n", cert: certGood},
			Summary: "the pre-TLS greeting is an [ALERT] with terminal escape sequences; STARTTLS is then honest",
			Expect:  "never reproduce the raw ESC byte in its output (strip or escape control characters)"},
		Scenario{Name: "spoof-error-escape", kind: kindSpoof, only: []starttls.Protocol{starttls.POP3},
			plan:    plan{refuseText: "-ERR " + escapeBait + "\r\n"},
			Summary: "STLS is answered by -ERR with terminal escape sequences",
			Expect:  "abort without credentials; never reproduce the raw ESC byte in its output"},
		Scenario{Name: "spoof-error-escape", kind: kindSpoof, only: []starttls.Protocol{starttls.SMTP},
			plan:    plan{refuseText: "454 4.7.0 " + escapeBait + "\r\n"},
			Summary: "STARTTLS is answered by 454 with terminal escape sequences",
			Expect:  "abort without credentials; never reproduce the raw ESC byte in its output"},
	)
	// One scenario per refusal the protocol knows.
	for _, p := range []starttls.Protocol{starttls.SMTP, starttls.IMAP, starttls.POP3, starttls.FTP, starttls.NNTP, starttls.Sieve} {
		for _, key := range sortedKeys(personalities[p].refusals) {
			out = append(out, Scenario{Name: "refuse-" + strings.ToLower(strings.TrimPrefix(key, "-")), kind: kindStrip,
				only: []starttls.Protocol{p}, plan: plan{refuse: key},
				Summary: fmt.Sprintf("STARTTLS is advertised but answered with %q", strings.TrimSpace(strings.ReplaceAll(personalities[p].refusals[key], "{tag}", "a1"))),
				Expect:  "abort without sending credentials or mail"})
		}
	}
	for _, p := range sortedProtocols(dialects) {
		for _, key := range sortedKeys(dialects[p].refusals) {
			out = append(out, Scenario{Name: "refuse-" + key, kind: kindStrip,
				only: []starttls.Protocol{p}, plan: plan{refuse: key},
				Summary: dialects[p].refusals[key],
				Expect:  "abort without sending credentials or data"})
		}
	}
	return out
}

// escapeBait sets the window title, clears the screen and prints a red
// phishing line: what a terminal does with it when a client echoes it raw.
const escapeBait = "\x1b]0;Mail: account locked\x07\x1b[2J\x1b[1;31mAccount locked: log in again at https://login.example.test\x1b[0m"

func sortedProtocols(m map[starttls.Protocol]*dialect) []starttls.Protocol {
	keys := make([]starttls.Protocol, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
