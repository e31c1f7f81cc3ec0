// Package clienttest plays malicious STARTTLS servers against a client,
// one scenario at a time, and judges from what the client sent whether it
// leaked credentials or mail in plaintext, acted on injected plaintext or
// accepted a bad certificate (the client side of the USENIX Security 2021
// study "Why TLS is better without STARTTLS", and CVE-2011-0411's twin).
package clienttest

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
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
}

// plan is what the scenario server does differently from an honest one.
type plan struct {
	greeting   string            // replaces the greeting
	noOffer    bool              // the upgrade is not listed in capabilities
	extraCaps  []string          // added to the pre-TLS capabilities
	mechanisms bool              // advertise plaintext authentication mechanisms
	answers    map[string]string // replace the reply to these verbs (SMTP: EHLO refused)
	refuse     string            // refusal key in the protocol's Refusals
	refuseText string            // the answer to the upgrade command, "{tag}" replaced
	inject     bool              // append the protocol's Inject to the go-ahead
	partial    bool              // inject a line without its CRLF
	earlyOK    bool              // append a go-ahead for the predicted tag to the capability reply
	cert       certKind
	// referral starts a second, plaintext-only server; "{referral}" in
	// the greeting becomes its address.
	referral *registry.CTReferral
}

// Scenarios lists every scenario for a protocol, the control first; none
// for a protocol clienttest does not speak. Submission and LMTP get SMTP's.
func Scenarios(proto starttls.Protocol) []Scenario {
	base, err := baseOf(proto)
	if err != nil {
		return nil
	}
	return catalogue(clientTestOf(base))
}

// kinds maps registry.CTScenario.Kind to how the scenario is judged.
var kinds = map[string]kind{"strip": kindStrip, "early-ok": kindEarlyOK, "referral": kindReferral, "spoof": kindSpoof}

// catalogue is the common scenarios that apply to ct, then its own, then
// one per refusal it knows.
func catalogue(ct *registry.ClientTest) []Scenario {
	line, d := ct.Line, ct.Dialect
	// Line protocols have a greeting to garble and lines to cut; mail
	// protocols' capabilities carry authentication mechanisms.
	mail := line != nil && len(line.Mechanisms) > 0
	var out []Scenario
	add := func(ok bool, s Scenario) {
		if ok {
			out = append(out, s)
		}
	}
	add(true, Scenario{Name: "control", kind: kindControl, plan: plan{cert: certGood},
		Summary: "an honest server offering STARTTLS with a trusted certificate",
		Expect:  "upgrade and carry on inside TLS (if this fails, the run does not count)"})
	strip := Scenario{Name: "strip-capability", kind: kindStrip, plan: plan{noOffer: true},
		Summary: "STARTTLS is not advertised (stripped by an attacker)",
		Expect:  "abort without sending credentials or mail"}
	if d != nil && d.StripSummary != "" {
		strip.Summary = d.StripSummary
	}
	add(true, strip)
	add(mail, Scenario{Name: "strip-mechanisms", kind: kindStrip,
		plan:    plan{noOffer: true, mechanisms: true},
		Summary: "no STARTTLS, many plaintext authentication mechanisms advertised",
		Expect:  "abort without authenticating in plaintext"})
	add(d == nil || !d.NoGoAhead, Scenario{Name: "inject-after-go-ahead", kind: kindInject, plan: plan{inject: true, cert: certGood},
		Summary: "the go-ahead is followed, in the same segment, by a forged answer to the first command inside TLS",
		Expect:  "abort, or discard the injected bytes and wait for the real answer inside TLS"})
	add(line != nil, Scenario{Name: "inject-partial-line", kind: kindInject, plan: plan{inject: true, partial: true, cert: certGood},
		Summary: "the go-ahead is followed by a fragment of a line without CRLF",
		Expect:  "abort, or discard the fragment"})
	add(mail, Scenario{Name: "tamper-capabilities", kind: kindTamper, plan: plan{extraCaps: []string{"X-TAMPERED"}, cert: certGood},
		Summary: "pre-TLS capabilities carry extra, attacker-chosen entries",
		Expect:  "ask for capabilities again inside TLS (ManageSieve: wait for the list the server re-sends) before authenticating"})
	add(line != nil, Scenario{Name: "malformed-greeting", kind: kindStrip, plan: plan{greeting: "hello there\r\n"},
		Summary: "a greeting that does not follow the protocol (CVE-2020-28896 class)",
		Expect:  "abort; TLS enforcement still applies"})
	for _, c := range []struct {
		k    certKind
		what string
	}{{certSelfSigned, "a self-signed certificate"}, {certUnknownCA, "a certificate from an unknown CA"},
		{certWrongName, "a certificate for another name"}, {certExpired, "an expired certificate"}} {
		out = append(out, Scenario{Name: "cert-" + string(c.k), kind: kindCert, plan: plan{cert: c.k},
			Summary: "STARTTLS succeeds, then the server presents " + c.what,
			Expect:  "reject the handshake; send nothing inside TLS"})
	}
	for _, cs := range ct.Scenarios {
		k, ok := kinds[cs.Kind]
		if !ok {
			k = -1 // judged inconclusive: "unknown scenario kind"
		}
		s := Scenario{Name: cs.Name, Summary: cs.Summary, Expect: cs.Expect, kind: k,
			plan: plan{greeting: cs.Greeting, answers: cs.Answers, refuseText: cs.RefuseText, earlyOK: cs.EarlyOK, cert: certGood}}
		if cs.Referral {
			s.plan.referral = ct.Referral
		}
		out = append(out, s)
	}
	if line != nil {
		for _, key := range slices.Sorted(maps.Keys(line.Refusals)) {
			out = append(out, Scenario{Name: "refuse-" + strings.ToLower(strings.TrimPrefix(key, "-")), kind: kindStrip,
				plan:    plan{refuse: key},
				Summary: fmt.Sprintf("STARTTLS is advertised but answered with %q", strings.TrimSpace(strings.ReplaceAll(line.Refusals[key], "{tag}", "a1"))),
				Expect:  "abort without sending credentials or mail"})
		}
	} else {
		for _, key := range slices.Sorted(maps.Keys(d.Refusals)) {
			out = append(out, Scenario{Name: "refuse-" + key, kind: kindStrip, plan: plan{refuse: key},
				Summary: d.Refusals[key],
				Expect:  "abort without sending credentials or data"})
		}
	}
	return out
}
