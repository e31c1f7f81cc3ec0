package check

import (
	"context"
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/tlsfake"
)

// vulnRun is a check part-way through: enumeration done (versions and
// suites as given), the vulnerability probes about to run against addr,
// reached as implicit TLS.
func vulnRun(t *testing.T, addr string, versions map[string]bool, suites map[string][]string) *run {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := strconv.Atoi(port)
	tg := starttls.Target{Protocol: starttls.SMTPS, Host: host, Port: p}
	info, _ := starttls.Lookup(tg.Protocol)
	o := Options{Timeout: 3 * time.Second, ServerName: "localhost"}.withDefaults(tg)
	r := &Report{TLS: TLSInfo{Versions: versions, CipherSuites: suites}, Timings: Timings{ProbesMS: map[string]float64{}}}
	return &run{t: tg, o: o, info: info, r: r}
}

func runVuln(t *testing.T, c *run, id string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, p := range vulnProbes {
		if p.id == id {
			p.run(ctx, c)
			return
		}
	}
	t.Fatalf("no probe registered for %s", id)
}

// TestActiveVulnsFake: each probe's verdict and finding against the fake
// with its flaw on (vulnerable, finding with evidence) and off
// (not-vulnerable, no finding).
func TestActiveVulnsFake(t *testing.T) {
	tls12 := map[string]bool{"tls1.2": true, "tls1.3": true}
	suites := map[string][]string{"tls1.2": {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_128_GCM_SHA256"}}
	for _, tc := range []struct {
		id   string
		flaw tlsfake.Flaw
	}{{"heartbleed", tlsfake.Heartbleed}, {"ccs-injection", tlsfake.CCSInjection}, {"robot", tlsfake.ROBOT}} {
		for _, vulnerable := range []bool{true, false} {
			t.Run(tc.id+"/"+strconv.FormatBool(vulnerable), func(t *testing.T) {
				t.Parallel()
				srv := tlsfake.Start(t, tc.flaw, vulnerable)
				c := vulnRun(t, srv.Addr, tls12, suites)
				runVuln(t, c, tc.id)
				want := map[bool]string{true: Vulnerable, false: NotVulnerable}[vulnerable]
				if got := c.r.TLS.Vulnerabilities[tc.id]; got != want {
					t.Errorf("verdict %q, want %q", got, want)
				}
				requireFinding(t, c.r, tc.id, vulnerable)
				for _, f := range c.r.Findings {
					if f.Severity != Critical || f.Evidence == "" {
						t.Errorf("finding %+v: want critical with evidence", f)
					}
				}
				if _, ok := c.r.Timings.ProbesMS["vuln:"+tc.id]; !ok {
					t.Error("no timing")
				}
			})
		}
	}
}

// TestActiveVulnsNotApplicable: a TLS 1.3-only server (or one without RSA
// key exchange) gets "n/a" with the reason, and no connection is made:
// the address is closed, so dialling would give an error verdict.
func TestActiveVulnsNotApplicable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close()
	c := vulnRun(t, dead, map[string]bool{"tls1.3": true, "tls1.2": false}, map[string][]string{"tls1.3": {"TLS_AES_128_GCM_SHA256"}})
	for _, id := range []string{"heartbleed", "ccs-injection", "robot", "client-renegotiation"} {
		runVuln(t, c, id)
		if v := c.r.TLS.Vulnerabilities[id]; !strings.HasPrefix(v, "n/a: ") {
			t.Errorf("%s: %q, want n/a", id, v)
		}
	}
	// The TLS 1.3 ticket fact is still tried (and fails on the dead port).
	if c.r.TLS.Facts != nil || len(c.r.TLS.ProbeErrors) != 1 || !strings.HasPrefix(c.r.TLS.ProbeErrors[0], "tls1.3 resumption: dial") {
		t.Errorf("facts %+v, errors %q", c.r.TLS.Facts, c.r.TLS.ProbeErrors)
	}
	// TLS 1.2 with CBC suites only: the probe client cannot complete a
	// handshake, known without a connection.
	c = vulnRun(t, dead, map[string]bool{"tls1.2": true}, map[string][]string{"tls1.2": {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"}})
	runVuln(t, c, "client-renegotiation")
	if v := c.r.TLS.Vulnerabilities["client-renegotiation"]; !strings.HasPrefix(v, "n/a: no TLS 1.2 suite the probe client speaks") {
		t.Errorf("client-renegotiation with CBC suites only: %q", v)
	}
	// TLS 1.2 accepted but a dead server: an error verdict, not a negative.
	c = vulnRun(t, dead, map[string]bool{"tls1.2": true}, nil)
	runVuln(t, c, "heartbleed")
	if v := c.r.TLS.Vulnerabilities["heartbleed"]; !strings.HasPrefix(v, "error: ") {
		t.Errorf("heartbleed against a closed port: %q, want error", v)
	}
}

// TestFullCheckActiveVulns: a full check of the library's own server
// (crypto/tls) runs every active probe; all are negative or n/a, and the
// resumption facts are crypto/tls's: tickets, no session ids.
func TestFullCheckActiveVulns(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	cfg := pki.server()
	// The server half clones its tls.Config per connection, and each clone
	// would make its own automatic ticket keys (tickets that never resume):
	// fixed keys survive the clone.
	cfg.SetSessionTicketKeys([][32]byte{{1, 2, 3}})
	addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: cfg})
	r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool())
	want := map[string]string{
		"heartbleed": NotVulnerable, "ccs-injection": NotVulnerable, "client-renegotiation": NotVulnerable,
		// crypto/tls's defaults have no TLS_RSA_* suite.
		"robot": "n/a: no TLS_RSA_* suite (RSA key exchange) accepted",
	}
	for id, v := range want {
		if got := r.TLS.Vulnerabilities[id]; got != v {
			t.Errorf("%s: %q, want %q", id, got, v)
		}
	}
	f := r.TLS.Facts
	if f == nil || f.SessionIDIssued == nil || *f.SessionIDIssued || f.ResumptionTicket == nil || !*f.ResumptionTicket ||
		f.ResumptionID == nil || *f.ResumptionID || f.TicketLifetimeS == nil {
		t.Errorf("facts %s, errors %q", factsString(f), r.TLS.ProbeErrors)
	}
}

func factsString(f *TLSFacts) string {
	if f == nil {
		return "none"
	}
	b := func(p *bool) string {
		if p == nil {
			return "?"
		}
		return strconv.FormatBool(*p)
	}
	life := "?"
	if f.TicketLifetimeS != nil {
		life = strconv.Itoa(*f.TicketLifetimeS)
	}
	return "session id " + b(f.SessionIDIssued) + ", resumed by id " + b(f.ResumptionID) + ", by ticket " + b(f.ResumptionTicket) + ", lifetime " + life
}

// TestCheckPostfixActiveVulns: Postfix (OpenSSL 3) with RSA key exchange
// enabled: no padding oracle, no early CCS, client-initiated
// renegotiation refused (Postfix 3.4+), and resumption by ticket.
func TestCheckPostfixActiveVulns(t *testing.T) {
	pf := peer.StartPostfix(t, peer.PostfixOptions{MainCF: legacyPostfix})
	r := checkPeer(t, starttls.SMTP, pf.SMTPAddr, pf.PKI)
	for _, id := range []string{"heartbleed", "ccs-injection", "robot", "client-renegotiation"} {
		if got := r.TLS.Vulnerabilities[id]; got != NotVulnerable {
			t.Errorf("%s: %q, want not-vulnerable", id, got)
		}
		requireFinding(t, r, id, false)
	}
	if f := r.TLS.Facts; f == nil || f.ResumptionTicket == nil || !*f.ResumptionTicket {
		t.Errorf("facts %s, errors %q", factsString(f), r.TLS.ProbeErrors)
	}
	t.Log(factsString(r.TLS.Facts))
}

// TestFullCheckResumption13: a TLS 1.3-only server gets the ticket fact
// from crypto/tls's client (true with tickets, false without), and no
// TLS 1.2 facts.
func TestFullCheckResumption13(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, tickets := range []bool{true, false} {
		cfg := pki.server()
		cfg.MinVersion = tls.VersionTLS13
		cfg.SessionTicketsDisabled = !tickets
		cfg.SetSessionTicketKeys([][32]byte{{4, 5, 6}})
		addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: cfg})
		r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool())
		f := r.TLS.Facts
		if f == nil || f.ResumptionTicket == nil || *f.ResumptionTicket != tickets || f.SessionIDIssued != nil {
			t.Errorf("tickets %v: facts %s, errors %q", tickets, factsString(f), r.TLS.ProbeErrors)
		}
		if v := r.TLS.Vulnerabilities["client-renegotiation"]; !strings.HasPrefix(v, "n/a: ") {
			t.Errorf("client-renegotiation on TLS 1.3 only: %q", v)
		}
	}
}

// TestCheckPostfixClientRenegotiation is the real positive: Postfix with
// OpenSSL 3's SSL_OP_ALLOW_CLIENT_RENEGOTIATION (0x100) set through
// tls_ssl_options renegotiates at the client's request.
func TestCheckPostfixClientRenegotiation(t *testing.T) {
	pf := peer.StartPostfix(t, peer.PostfixOptions{MainCF: []string{"tls_ssl_options = 0x100"}})
	r := checkPeer(t, starttls.SMTP, pf.SMTPAddr, pf.PKI)
	if v := r.TLS.Vulnerabilities["client-renegotiation"]; v != Vulnerable {
		t.Errorf("client-renegotiation: %q, want vulnerable", v)
	}
	requireFinding(t, r, "client-renegotiation", true)
	for _, f := range r.Findings {
		if f.ID == "client-renegotiation" && (f.Severity != Medium || !strings.Contains(f.Evidence, "ServerHello")) {
			t.Errorf("finding %+v: want medium with the ServerHello as evidence", f)
		}
	}
}
