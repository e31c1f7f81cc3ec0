package mail

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"math/big"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
)

// reissue signs a new certificate for hosts with key's public half: a
// renewal that keeps the key.
func reissue(t *testing.T, ca *certs.CA, key crypto.Signer, hosts ...string) *x509.Certificate {
	t.Helper()
	now := time.Now()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(now.UnixNano()), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(0, 3, 0), DNSNames: hosts,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tlsaOf(t *testing.T, usage, selector, matching uint8, c *x509.Certificate) TLSA {
	t.Helper()
	d, err := Association(c, selector, matching)
	if err != nil {
		t.Fatal(err)
	}
	return NewTLSA(usage, selector, matching, hex.EncodeToString(d))
}

func TestPlanRollover(t *testing.T) {
	ca, err := certs.NewCA("rollover CA")
	if err != nil {
		t.Fatal(err)
	}
	ca2, err := certs.NewCA("the next CA")
	if err != nil {
		t.Fatal(err)
	}
	const mx = "mx.example.org"
	old, err := ca.Issue(certs.LeafOptions{Hosts: []string{mx}})
	if err != nil {
		t.Fatal(err)
	}
	newKey, err := ca.Issue(certs.LeafOptions{Hosts: []string{mx}})
	if err != nil {
		t.Fatal(err)
	}
	otherCA, err := ca2.Issue(certs.LeafOptions{Hosts: []string{mx}})
	if err != nil {
		t.Fatal(err)
	}
	sameKey := reissue(t, ca, old.TLS.PrivateKey.(crypto.Signer), mx)
	current := []*x509.Certificate{old.Cert, ca.Cert}

	ee311, ee301 := tlsaOf(t, 3, 1, 1, old.Cert), tlsaOf(t, 3, 0, 1, old.Cert)
	ta211, ta201 := tlsaOf(t, 2, 1, 1, ca.Cert), tlsaOf(t, 2, 0, 1, ca.Cert)
	pkix111 := tlsaOf(t, 1, 1, 1, old.Cert)
	next311 := tlsaOf(t, 3, 1, 1, newKey.Cert).String()
	chain := func(c ...*x509.Certificate) *Next { return &Next{Chain: c, SPKI: c[0].RawSubjectPublicKeyInfo} }
	keyOnly := func(c *x509.Certificate) *Next { return &Next{SPKI: c.RawSubjectPublicKeyInfo} }

	cases := []struct {
		name      string
		records   []TLSA
		next      *Next
		ready     bool
		undecided bool
		publish   []string
		remove    []string
		next0     string // the first record's Next
	}{
		{"renewal with the same key keeps 3 1 1", []TLSA{ee311}, chain(sameKey, ca.Cert), true, false, nil, nil, MatchYes},
		{"new key: publish its 3 1 1 first, remove the old after", []TLSA{ee311}, chain(newKey.Cert, ca.Cert), false, false,
			[]string{next311}, []string{ee311.String()}, MatchNo},
		{"3 0 1 pins the certificate: a renewal breaks it", []TLSA{ee301}, chain(sameKey, ca.Cert), false, false,
			[]string{tlsaOf(t, 3, 1, 1, sameKey).String()}, []string{ee301.String()}, MatchNo},
		{"2 1 1 of the issuer survives a new key", []TLSA{ta211}, chain(newKey.Cert, ca.Cert), true, false, nil, nil, MatchYes},
		{"2 0 1 of the issuer survives a new key", []TLSA{ta201, ee311}, chain(newKey.Cert, ca.Cert), true, false, nil, []string{ee311.String()}, MatchYes},
		{"2 1 1 needs the issuer in the PEM file", []TLSA{ta211}, chain(newKey.Cert), false, false,
			[]string{next311}, []string{ta211.String()}, MatchNo},
		{"another CA: 3 1 1 and 2 1 1 of the new issuer", []TLSA{ta211}, chain(otherCA.Cert, ca2.Cert), false, false,
			[]string{tlsaOf(t, 3, 1, 1, otherCA.Cert).String(), tlsaOf(t, 2, 1, 1, ca2.Cert).String()}, []string{ta211.String()}, MatchNo},
		{"key only: 3 1 1 decided", []TLSA{ee311}, keyOnly(sameKey), true, false, nil, nil, MatchYes},
		{"key only: a new key", []TLSA{ee311}, keyOnly(newKey.Cert), false, false, []string{next311}, []string{ee311.String()}, MatchNo},
		{"key only: DANE-TA undecided", []TLSA{ta211}, keyOnly(newKey.Cert), false, true, []string{next311}, nil, MatchUnknown},
		{"key only: 3 0 1 cannot match", []TLSA{ee301}, keyOnly(sameKey), false, false, []string{tlsaOf(t, 3, 1, 1, sameKey).String()}, []string{ee301.String()}, MatchNo},
		{"a PKIX record is not usable and goes", []TLSA{pkix111, ee311}, chain(sameKey, ca.Cert), true, false, nil, []string{pkix111.String()}, MatchNo},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := PlanRollover(tc.records, current, tc.next, []string{mx}, 3600, time.Now())
			if p.Ready != tc.ready || p.Undecided != tc.undecided {
				t.Errorf("ready %v undecided %v, want %v %v; records %+v", p.Ready, p.Undecided, tc.ready, tc.undecided, p.Records)
			}
			if !slices.Equal(p.Publish, nilEmpty(tc.publish)) {
				t.Errorf("publish %v, want %v", p.Publish, tc.publish)
			}
			if !slices.Equal(p.Remove, nilEmpty(tc.remove)) {
				t.Errorf("remove %v, want %v", p.Remove, tc.remove)
			}
			if p.Records[0].Next != tc.next0 {
				t.Errorf("first record next %q, want %q (%s)", p.Records[0].Next, tc.next0, p.Records[0].Note)
			}
			if tc.records[0].Usable && p.Records[0].Current != MatchYes {
				t.Errorf("the record matches the current chain, got %q", p.Records[0].Current)
			}
			steps := strings.Join(p.Steps, "; ")
			if len(tc.publish) > 0 && !strings.Contains(steps, "publish \""+tc.publish[0]+"\"") || !strings.Contains(steps, "3600 s") && len(tc.publish) > 0 {
				t.Errorf("steps %q do not say to publish %v first and wait the TTL", steps, tc.publish)
			}
			if len(tc.remove) > 0 && !strings.Contains(steps, "then remove \""+tc.remove[0]+"\"") {
				t.Errorf("steps %q do not say to remove %v after", steps, tc.remove)
			}
		})
	}
	// Unknown current chain: Current is "unknown", the plan is the same.
	p := PlanRollover([]TLSA{ee311}, nil, chain(newKey.Cert, ca.Cert), []string{mx}, 0, time.Now())
	if p.Records[0].Current != MatchUnknown || p.Ready || !slices.Equal(p.Publish, []string{next311}) {
		t.Errorf("without the current chain: %+v", p)
	}
}

func nilEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func TestParseNext(t *testing.T) {
	ca, err := certs.NewCA("parse CA")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(l.Cert.RawSubjectPublicKeyInfo)
	want311 := "3 1 1 " + hex.EncodeToString(want[:])

	n, err := ParseNextCert(append(append([]byte{}, l.KeyPEM...), l.ChainPEM...))
	if err != nil || len(n.Chain) != 2 || n.TLSA311().String() != want311 {
		t.Fatalf("chain with a key in front: %v %+v", err, n)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(l.Cert.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	ecDER, err := x509.MarshalECPrivateKey(l.TLS.PrivateKey.(*ecdsa.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{
		"pkcs8":       l.KeyPEM,
		"public key":  pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}),
		"sec1":        pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: ecDER}),
		"certificate": l.CertPEM,
	} {
		n, err := ParseNextKey(in)
		if err != nil || len(n.Chain) != 0 || n.TLSA311().String() != want311 {
			t.Errorf("%s: %v, %+v", name, err, n)
		}
	}
	for name, in := range map[string][]byte{
		"empty":      nil,
		"garbage":    []byte("hello"),
		"bad cert":   pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2, 3}}),
		"bad key":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}),
		"only a key": l.KeyPEM,
	} {
		if _, err := ParseNextCert(in); err == nil {
			t.Errorf("ParseNextCert(%s) accepted", name)
		}
		if name != "only a key" {
			if _, err := ParseNextKey(in); err == nil {
				t.Errorf("ParseNextKey(%s) accepted", name)
			}
		}
	}
}
