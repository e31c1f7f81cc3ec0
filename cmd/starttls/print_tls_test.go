package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/check"
)

func TestPrintVulnsAndFacts(t *testing.T) {
	yes, no, life := true, false, 7200
	r := &check.Report{Target: "smtp://mx.test:25", Depth: "full", TLS: check.TLSInfo{
		Vulnerabilities: map[string]string{
			"sweet32": check.NotVulnerable, "rc4": check.Vulnerable,
			"cbc-only-tls10": "n/a: neither TLS 1.0 nor SSLv3 is accepted", "sslv2-enabled": "error: dial: refused",
			"tls-compression": check.NotVulnerable,
		},
		Facts: &check.TLSFacts{
			SecureRenegotiation: &no, SessionIDIssued: &yes, ResumptionTicket: &yes, TicketLifetimeS: &life,
			MustStaple: &no, SCTs: map[string]int{"tls-extension": 1, "certificate": 2, "ocsp": 0},
			DHGroupBits: 2048, DHGroup: "RFC 7919 ffdhe2048", ECPointFormats: []string{"uncompressed"}, FirstFlight: true,
		},
	}}
	var b bytes.Buffer
	printReport(&b, r)
	out := b.String()
	for _, want := range []string{
		"\nVulnerabilities\n  cbc-only-tls10           n/a: neither TLS 1.0 nor SSLv3 is accepted\n  rc4                      vulnerable\n  sslv2-enabled            error: dial: refused\n  sweet32                  not-vulnerable\n  tls-compression          not-vulnerable\n",
		"\nTLS facts\n  secure renegotiation     no\n",
		"  session id issued        yes\n",
		"  resumption (ticket)      yes\n",
		"  must-staple              no\n",
		"  ticket lifetime          7200 s\n",
		"  SCTs                     certificate 2, ocsp 0, tls-extension 1\n",
		"  DH group                 2048 bits (RFC 7919 ffdhe2048)\n",
		"  EC point formats         uncompressed\n",
		"  compression              null only\n",
		"  first flight             certificate and key exchange read",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "resumption (session id)") {
		t.Errorf("an unmeasured fact is printed:\n%s", out)
	}

	var c bytes.Buffer
	p := &printer{w: &c, color: true, ours: map[string]struct{}{}}
	printVulnsAndFacts(p, r.TLS)
	for _, want := range []string{"\x1b[31mvulnerable\x1b[0m", "\x1b[32mnot-vulnerable\x1b[0m", "\x1b[33merror: dial: refused\x1b[0m", "\x1b[31mno\x1b[0m"} {
		if !strings.Contains(c.String(), want) {
			t.Errorf("colored output lacks %q: %q", want, c.String())
		}
	}

	var none bytes.Buffer
	printReport(&none, &check.Report{Target: "smtp://mx.test:25", Depth: "quick"})
	if strings.Contains(none.String(), "Vulnerabilities") || strings.Contains(none.String(), "TLS facts") {
		t.Errorf("a quick report prints empty sections:\n%s", none.String())
	}
}
