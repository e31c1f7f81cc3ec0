package check

import (
	"bytes"
	"context"
	"encoding/hex"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
)

// oakley2 is the RFC 2409 §6.2 1024-bit MODP prime (Oakley group 2).
const oakley2 = "ffffffffffffffffc90fdaa22168c234c4c6628b80dc1cd129024e088a67cc74020bbea63b139b22514a08798e3404ddef9519b3cd3a431b302b0a6df25f14374fe1356d6d51c245e485b576625e7ec6f44c42e9a637ed6b0bff5cb6f406b7edee386bfb5a899fa5ae9f24117c4b1fe649286651ece65381ffffffffffffffff"

func tlsRecord(body []byte) []byte {
	return append([]byte{22, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

func handshakeMsg(typ byte, body []byte) []byte {
	return append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

func vec16(b []byte) []byte { return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...) }

// dheFlight is a TLS 1.2 first flight choosing suite with the DH prime p
// (or, when p is nil, the ECDHE curve secp256r1).
func dheFlight(suite uint16, p []byte, chain ...[]byte) []byte {
	hello := append([]byte{3, 3}, bytes.Repeat([]byte{1}, 32)...)
	hello = append(hello, 0, byte(suite>>8), byte(suite), 0)
	var ske []byte
	if p != nil {
		ske = append(append(append(ske, vec16(p)...), vec16([]byte{2})...), vec16(bytes.Repeat([]byte{7}, len(p)))...)
	} else {
		ske = append([]byte{3, 0, 23, 32}, bytes.Repeat([]byte{5}, 32)...)
	}
	ske = append(append(ske, 4, 1), vec16(bytes.Repeat([]byte{9}, 64))...)
	msgs := handshakeMsg(2, hello)
	if len(chain) > 0 {
		var list []byte
		for _, der := range chain {
			list = append(list, byte(len(der)>>16), byte(len(der)>>8), byte(len(der)))
			list = append(list, der...)
		}
		msgs = append(msgs, handshakeMsg(11, append([]byte{byte(len(list) >> 16), byte(len(list) >> 8), byte(len(list))}, list...))...)
	}
	msgs = append(append(msgs, handshakeMsg(12, ske)...), handshakeMsg(14, nil)...)
	return tlsRecord(msgs)
}

// flightTarget is an implicit-TLS "server" that answers every ClientHello
// with flight: what weakDH reads, without a TLS stack that still speaks
// export-size or common-prime DHE.
func flightTarget(t *testing.T, flight []byte) starttls.Target {
	t.Helper()
	addr := loopback.Serve(t, 5*time.Second, func(c net.Conn) {
		hdr := make([]byte, 5)
		if _, err := io.ReadFull(c, hdr); err != nil {
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(hdr[3])<<8|int64(hdr[4])); err != nil {
			return
		}
		_, _ = c.Write(flight)
	})
	tg, err := starttls.ParseTarget(addr, starttls.SMTPS)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestWeakDHVerdicts(t *testing.T) {
	common, _ := hex.DecodeString(oakley2)
	private := func(bits int) []byte { return append([]byte{0xC5}, bytes.Repeat([]byte{0x3B}, bits/8-1)...) }
	dhe := map[string][]string{"tls1.2": {"TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}}
	cases := []struct {
		name     string
		suites   map[string][]string
		flight   []byte
		verdict  string
		severity Severity // of the finding; -1 for none
		bits     int
		group    string
		evidence string
	}{
		{"export size", dhe, dheFlight(0x009E, private(512)), Vulnerable, Critical, 512, "", "export-size"},
		{"common 1024-bit prime", dhe, dheFlight(0x009E, common), Vulnerable, High, 1024, "RFC 2409 Oakley group 2 (1024-bit MODP)", "Logjam common-prime"},
		{"own 1024-bit prime", dhe, dheFlight(0x009E, private(1024)), Vulnerable, High, 1024, "", "not a well-known prime"},
		{"own 2048-bit prime", dhe, dheFlight(0x009E, private(2048)), NotVulnerable, -1, 2048, "", ""},
		{"no DHE suite", map[string][]string{"tls1.2": {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"}}, dheFlight(0x009E, private(512)), "n/a: no DHE suite accepted", -1, 0, "", ""},
		{"server picks ECDHE anyway", dhe, dheFlight(0xC02F, nil), "error: offered only DHE suites, the server chose TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", -1, 0, "", ""},
		{"garbage flight", dhe, []byte("220 not tls\r\n"), "error: answer is not TLS", -1, 0, "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tg := flightTarget(t, tc.flight)
			o := Options{Timeout: 2 * time.Second}.withDefaults(tg)
			c := &run{t: tg, o: o, r: &Report{TLS: TLSInfo{CipherSuites: tc.suites}, Timings: Timings{ProbesMS: map[string]float64{}}}}
			c.info, _ = starttls.Lookup(tg.Protocol)
			weakDH(context.Background(), c)
			if v := c.r.TLS.Vulnerabilities["weak-dh"]; !strings.HasPrefix(v, tc.verdict) {
				t.Errorf("verdict %q, want %q", v, tc.verdict)
			}
			requireFinding(t, c.r, "weak-dh", tc.severity >= 0)
			for _, f := range c.r.Findings {
				if f.Severity != tc.severity || !strings.Contains(f.Evidence, tc.evidence) || !strings.Contains(f.Evidence, "-bit DH group") {
					t.Errorf("finding %+v, want severity %v and %q", f, tc.severity, tc.evidence)
				}
			}
			bits, group := 0, ""
			if f := c.r.TLS.Facts; f != nil {
				bits, group = f.DHGroupBits, f.DHGroup
			}
			if bits != tc.bits || group != tc.group {
				t.Errorf("facts %d bits %q, want %d %q", bits, group, tc.bits, tc.group)
			}
		})
	}
}

// When crypto/tls cannot finish the handshake, the chain comes from the
// first flight and gets every certificate finding; without a chain in the
// flight there is none to judge.
func TestFirstFlightCertificate(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	der := pki.leaf.TLS.Certificate[0]
	for _, tc := range []struct {
		name  string
		roots bool
		chain [][]byte
	}{{"trusted", true, [][]byte{der}}, {"untrusted", false, [][]byte{der}}, {"no chain", true, nil}} {
		t.Run(tc.name, func(t *testing.T) {
			tg := flightTarget(t, dheFlight(0x009E, bytes.Repeat([]byte{0xC5}, 128), tc.chain...))
			o := Options{Depth: Quick, Timeout: 2 * time.Second, ServerName: "localhost"}
			if tc.roots {
				o.Roots = pki.ca.Pool()
			}
			r := Run(context.Background(), tg, o)
			if r.Status != starttls.StatusHandshake || !r.Has("handshake-failed") {
				t.Fatalf("status %s %s", r.Status, r.Error)
			}
			first := r.TLS.Facts != nil && r.TLS.Facts.FirstFlight
			if first != (tc.chain != nil) || (len(r.Certificate.Chain) > 0) != (tc.chain != nil) {
				t.Fatalf("first flight %v, chain %d", first, len(r.Certificate.Chain))
			}
			requireFinding(t, r, "cert-untrusted", tc.chain != nil && !tc.roots)
			if tc.chain != nil && tc.roots && !r.Certificate.Verification.OK {
				t.Errorf("verification %+v", r.Certificate.Verification)
			}
		})
	}
}

// A server with no DHE at all (crypto/tls): weak-dh is n/a, and a session
// that completes never falls back to the first flight.
func TestWeakDHNotApplicable(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: pki.server()})
	r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool())
	if v := r.TLS.Vulnerabilities["weak-dh"]; v != "n/a: no DHE suite accepted" {
		t.Errorf("weak-dh %q", v)
	}
	requireFinding(t, r, "weak-dh", false)
	if f := r.TLS.Facts; f != nil && (f.FirstFlight || f.DHGroupBits != 0) {
		t.Errorf("facts %+v", f)
	}
}
