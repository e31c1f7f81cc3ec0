package mail

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
)

func hexSum256(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
func hexSum512(b []byte) string { s := sha512.Sum512(b); return hex.EncodeToString(s[:]) }

func TestVerifyDANE(t *testing.T) {
	ca, err := certs.NewCA("dane test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Hosts: []string{"mx.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	expired, err := ca.Issue(certs.LeafOptions{Hosts: []string{"other.example"},
		NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	other, _ := certs.NewCA("another CA")
	chain := []*x509.Certificate{leaf.Cert, ca.Cert}
	names := []string{"mx.example.test"}
	l, c := leaf.Cert, ca.Cert
	for _, tc := range []struct {
		name  string
		rec   TLSA
		chain []*x509.Certificate
		names []string
		want  bool
		why   string
	}{
		{"3 1 1", NewTLSA(3, 1, 1, hexSum256(l.RawSubjectPublicKeyInfo)), chain, names, true, ""},
		{"3 0 1", NewTLSA(3, 0, 1, hexSum256(l.Raw)), chain, names, true, ""},
		{"3 1 2", NewTLSA(3, 1, 2, hexSum512(l.RawSubjectPublicKeyInfo)), chain, names, true, ""},
		{"3 0 0", NewTLSA(3, 0, 0, hex.EncodeToString(l.Raw)), chain, names, true, ""},
		{"3 1 1 upper-case hex", NewTLSA(3, 1, 1, strings.ToUpper(hexSum256(l.RawSubjectPublicKeyInfo))), chain, names, true, ""},
		{"3 1 1 wrong", NewTLSA(3, 1, 1, strings.Repeat("00", 32)), chain, names, false, "does not match the leaf"},
		{"3 1 1 of the CA", NewTLSA(3, 1, 1, hexSum256(c.RawSubjectPublicKeyInfo)), chain, names, false, "does not match the leaf"},
		// DANE-EE ignores names and dates (RFC 7672 §3.1.1).
		{"3 1 1 expired, other name", NewTLSA(3, 1, 1, hexSum256(expired.Cert.RawSubjectPublicKeyInfo)),
			[]*x509.Certificate{expired.Cert}, names, true, ""},
		{"2 0 1", NewTLSA(2, 0, 1, hexSum256(c.Raw)), chain, names, true, ""},
		{"2 1 1", NewTLSA(2, 1, 1, hexSum256(c.RawSubjectPublicKeyInfo)), chain, names, true, ""},
		{"2 0 1 second name", NewTLSA(2, 0, 1, hexSum256(c.Raw)), chain, []string{"base.example", "mx.example.test."}, true, ""},
		// DANE-TA checks names against the TLSA base domain and MX name (§3.1.2).
		{"2 0 1 wrong name", NewTLSA(2, 0, 1, hexSum256(c.Raw)), chain, []string{"elsewhere.example"}, false, "matches certificate 1, but"},
		// ... and the server must send the anchor.
		{"2 0 1 anchor not sent", NewTLSA(2, 0, 1, hexSum256(c.Raw)), chain[:1], names, false, "matches no certificate"},
		{"2 0 1 other CA", NewTLSA(2, 0, 1, hexSum256(other.Cert.Raw)), chain, names, false, "matches no certificate"},
		{"2 0 1 of the leaf", NewTLSA(2, 0, 1, hexSum256(l.Raw)), chain, names, false, "the leaf itself"},
		{"2 0 1 expired leaf", NewTLSA(2, 0, 1, hexSum256(c.Raw)), []*x509.Certificate{expired.Cert, c}, []string{"other.example"}, false, "matches certificate 1, but"},
		{"no chain", NewTLSA(3, 1, 1, hexSum256(l.RawSubjectPublicKeyInfo)), nil, names, false, "no certificate"},
		// Unusable records never authenticate.
		{"1 1 1 matching", NewTLSA(1, 1, 1, hexSum256(l.RawSubjectPublicKeyInfo)), chain, names, false, ""},
	} {
		recs := []TLSA{tc.rec}
		ok, why := VerifyDANE(recs, tc.chain, tc.names, time.Now())
		if ok != tc.want || !strings.Contains(why, tc.why) || ok != recs[0].Matched {
			t.Errorf("%s: ok=%v matched=%v why=%q; want %v and %q", tc.name, ok, recs[0].Matched, why, tc.want, tc.why)
		}
	}
	// One matching record among others is enough.
	recs := []TLSA{NewTLSA(3, 1, 1, strings.Repeat("11", 32)), NewTLSA(2, 0, 1, hexSum256(c.Raw))}
	if ok, _ := VerifyDANE(recs, chain, names, time.Now()); !ok || recs[0].Matched || !recs[1].Matched {
		t.Errorf("mixed set: ok=%v matched=%v,%v", ok, recs[0].Matched, recs[1].Matched)
	}
}

func TestNewTLSA(t *testing.T) {
	d32 := strings.Repeat("ab", 32)
	for _, c := range []struct {
		u, s, m uint8
		data    string
		usable  bool
		problem string
	}{
		{3, 1, 1, d32, true, ""},
		{2, 0, 2, strings.Repeat("ab", 64), true, ""},
		{3, 0, 0, "3082", true, ""},
		{0, 0, 1, d32, false, "PKIX"},
		{1, 1, 1, d32, false, "PKIX"},
		{4, 1, 1, d32, false, "unknown usage"},
		{3, 2, 1, d32, false, "unknown selector"},
		{3, 1, 3, d32, false, "unknown matching"},
		{3, 1, 1, "abcd", false, "does not fit"},
		{3, 1, 2, d32, false, "does not fit"},
		{3, 1, 1, "zz", false, "not hex"},
		{3, 1, 0, "", false, "empty"},
	} {
		r := NewTLSA(c.u, c.s, c.m, c.data)
		if r.Usable != c.usable || !strings.Contains(r.Problem, c.problem) {
			t.Errorf("%d %d %d %s: usable %v problem %q", c.u, c.s, c.m, c.data, r.Usable, r.Problem)
		}
	}
}
