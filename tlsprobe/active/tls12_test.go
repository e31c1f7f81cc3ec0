package active

import (
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/internal/probetest"
)

func goConfig(t *testing.T, kt certs.KeyType) *tls.Config {
	leaf := probetest.Leaf(t, kt)
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MaxVersion: tls.VersionTLS12,
		CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_RSA_WITH_AES_256_GCM_SHA384}}
}

// TestHandshake12GoServer completes the minimal client's handshake with
// crypto/tls for every suite and key type it speaks; the server's
// Finished is verified by Handshake12 and the server must agree on the
// suite and see no error.
func TestHandshake12GoServer(t *testing.T) {
	for _, kt := range []certs.KeyType{certs.RSA2048, certs.ECDSAP256} {
		cfg := goConfig(t, kt)
		states := make(chan tls.ConnectionState, 1)
		dial := probetest.GoReadingServer(t, cfg, states)
		for _, s := range suites12 {
			rsaSuite := s.id == 0xC02F || s.id == 0xC030 || !s.ecdhe
			if rsaSuite != (kt == certs.RSA2048) {
				continue
			}
			ctx := probetest.Ctx(t)
			conn, err := dial(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Handshake12(ctx, conn, Config12{Suites: []uint16{s.id}})
			if err != nil {
				t.Fatalf("%s: %v", tlsprobe.SuiteName(s.id), err)
			}
			st := <-states
			if st.CipherSuite != s.id || c.Session.Suite != s.id {
				t.Errorf("%s: server negotiated %s, client %s", tlsprobe.SuiteName(s.id), tlsprobe.SuiteName(st.CipherSuite), tlsprobe.SuiteName(c.Session.Suite))
			}
			_ = c.CloseNotify()
		}
	}
}

func TestResumptionGoServer(t *testing.T) {
	cfg := goConfig(t, certs.ECDSAP256)
	res, err := ProbeResumption(probetest.Ctx(t), probetest.GoReadingServer(t, cfg, nil), tlsprobe.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// crypto/tls issues no session ids (it echoes the client's, which is
	// empty here) and resumes by ticket.
	wantFacts(t, res, false, false, true, true)
	// crypto/tls sends 0, "unspecified" (RFC 5077 §3.3).
	if res.TicketLifetimeS == nil || *res.TicketLifetimeS != 0 {
		t.Errorf("ticket lifetime %v, want crypto/tls's 0", res.TicketLifetimeS)
	}

	off := cfg.Clone()
	off.SessionTicketsDisabled = true
	res, err = ProbeResumption(probetest.Ctx(t), probetest.GoReadingServer(t, off, nil), tlsprobe.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	wantFacts(t, res, false, false, false, false)
	if res.TicketLifetimeS != nil {
		t.Errorf("ticket lifetime %d without a ticket", *res.TicketLifetimeS)
	}
}

func wantFacts(t *testing.T, res *Resumption, id, byID, ticket, byTicket bool) {
	t.Helper()
	for _, f := range []struct {
		name string
		got  *bool
		want bool
	}{{"session id issued", res.SessionIDIssued, id}, {"resumed by id", res.ResumedByID, byID},
		{"ticket issued", res.TicketIssued, ticket}, {"resumed by ticket", res.ResumedByTicket, byTicket}} {
		if f.got == nil || *f.got != f.want {
			t.Errorf("%s = %v, want %v (errors %q)", f.name, f.got, f.want, res.Errors)
		}
	}
}

func TestClientRenegotiationGoServer(t *testing.T) {
	dial := probetest.GoReadingServer(t, goConfig(t, certs.RSA2048), nil)
	res, err := ClientRenegotiation(probetest.Ctx(t), dial, tlsprobe.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Vulnerable {
		t.Errorf("crypto/tls accepted a client-initiated renegotiation: %s", res.Evidence)
	}
	t.Log(res.Evidence)
}

// TestOpenSSLRenegotiationAndResumption: OpenSSL 3.0's s_server renegotiates
// at the client's request with -client_renegotiation (the real positive)
// and refuses with -no_renegotiation; it resumes by session id and ticket.
func TestOpenSSLRenegotiationAndResumption(t *testing.T) {
	leaf := probetest.Leaf(t, certs.RSA2048)
	opts := tlsprobe.Options{Timeout: 5 * time.Second}
	for _, tc := range []struct {
		args []string
		want bool
	}{{[]string{"-client_renegotiation"}, true}, {[]string{"-no_renegotiation"}, false}, {nil, false}} {
		dial := probetest.OpenSSLServer(t, leaf, append([]string{"-tls1_2"}, tc.args...)...)
		res, err := ClientRenegotiation(probetest.Ctx(t), dial, opts)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if res.Vulnerable != tc.want {
			t.Errorf("%v: vulnerable = %v, want %v (%s)", tc.args, res.Vulnerable, tc.want, res.Evidence)
		}
		t.Logf("%v: %s", tc.args, res.Evidence)
	}
	dial := probetest.OpenSSLServer(t, leaf, "-tls1_2")
	res, err := ProbeResumption(probetest.Ctx(t), dial, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantFacts(t, res, true, true, true, true)
	if res.TicketLifetimeS == nil || *res.TicketLifetimeS == 0 {
		t.Errorf("ticket lifetime %v, want OpenSSL's session timeout", res.TicketLifetimeS)
	} else {
		t.Logf("ticket lifetime hint %d s", *res.TicketLifetimeS)
	}
	dial = probetest.OpenSSLServer(t, leaf, "-tls1_2", "-no_ticket", "-no_cache")
	res, err = ProbeResumption(probetest.Ctx(t), dial, opts)
	if err != nil {
		t.Fatal(err)
	}
	wantFacts(t, res, false, false, false, false)
}

// TestActiveProbesRealServers: the negatives against real stacks,
// crypto/tls and OpenSSL 3.0 (no heartbeat support, CCS rejected, no
// padding oracle), with RSA key exchange enabled so that ROBOT applies.
func TestActiveProbesRealServers(t *testing.T) {
	opts := tlsprobe.Options{Timeout: 5 * time.Second}
	goCfg := goConfig(t, certs.RSA2048)
	goCfg.CipherSuites = append(goCfg.CipherSuites, tls.TLS_RSA_WITH_AES_128_CBC_SHA)
	servers := map[string]tlsprobe.Dialer{
		"crypto/tls": probetest.GoReadingServer(t, goCfg, nil),
		"openssl":    probetest.OpenSSLServer(t, probetest.Leaf(t, certs.RSA2048), "-tls1_2", "-cipher", "AES128-GCM-SHA256:AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256"),
	}
	for name, dial := range servers {
		for probe, run := range map[string]func() (VulnResult, error){
			"heartbleed": func() (VulnResult, error) { return Heartbleed(probetest.Ctx(t), dial, opts, tlsprobe.TLS12) },
			"ccs":        func() (VulnResult, error) { return CCSInjection(probetest.Ctx(t), dial, opts, tlsprobe.TLS12) },
			"robot": func() (VulnResult, error) {
				return ROBOT(probetest.Ctx(t), dial, opts, tlsprobe.TLS12, []uint16{0x009C, 0x002F})
			},
			"reneg": func() (VulnResult, error) { return ClientRenegotiation(probetest.Ctx(t), dial, opts) },
		} {
			start := time.Now()
			res, err := run()
			if err != nil {
				t.Errorf("%s %s: %v", name, probe, err)
				continue
			}
			if res.Vulnerable {
				t.Errorf("%s %s: vulnerable: %s", name, probe, res.Evidence)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("%s %s: %v (waited for a deadline)", name, probe, d)
			}
			t.Logf("%s %s: %s", name, probe, res.Evidence)
		}
	}
}

// TestResumption13: crypto/tls and OpenSSL issue TLS 1.3 tickets and take
// them back; with tickets off (crypto/tls SessionTicketsDisabled, OpenSSL
// -num_tickets 0) none comes.
func TestResumption13(t *testing.T) {
	opts := tlsprobe.Options{Timeout: 5 * time.Second}
	cfg := &tls.Config{Certificates: []tls.Certificate{probetest.Leaf(t, certs.ECDSAP256).TLS}, MinVersion: tls.VersionTLS13}
	off := cfg.Clone()
	off.SessionTicketsDisabled = true
	leaf := probetest.Leaf(t, certs.RSA2048)
	for _, tc := range []struct {
		name            string
		dial            tlsprobe.Dialer
		issued, resumed bool
	}{
		{"crypto/tls", probetest.GoReadingServer(t, cfg, nil), true, true},
		{"crypto/tls tickets off", probetest.GoReadingServer(t, off, nil), false, false},
		{"openssl", probetest.OpenSSLServer(t, leaf, "-tls1_3"), true, true},
		{"openssl -num_tickets 0", probetest.OpenSSLServer(t, leaf, "-tls1_3", "-num_tickets", "0"), false, false},
	} {
		issued, resumed, err := ProbeResumption13(probetest.Ctx(t), tc.dial, opts)
		if err != nil || issued != tc.issued || resumed != tc.resumed {
			t.Errorf("%s: issued %v resumed %v (%v), want %v %v", tc.name, issued, resumed, err, tc.issued, tc.resumed)
		}
	}
}

// TestHandshake12NoCommonSuite: a server without AES-GCM answers the
// minimal client's hello with an alert: ErrDeclined, saying why.
func TestHandshake12NoCommonSuite(t *testing.T) {
	cfg := goConfig(t, certs.RSA2048)
	cfg.CipherSuites = []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA}
	_, err := ClientRenegotiation(probetest.Ctx(t), probetest.GoReadingServer(t, cfg, nil), tlsprobe.Options{Timeout: 5 * time.Second})
	if !errors.Is(err, tlsprobe.ErrDeclined) || !strings.Contains(err.Error(), "AES-GCM") {
		t.Fatalf("err = %v, want ErrDeclined naming what the probe client offers", err)
	}
}
