package tlsprobe

import (
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os/exec"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/peer"
)

// piFixed is floor(pi * 2^bits), by Machin's formula with guard bits.
func piFixed(bits uint) *big.Int {
	g := bits + 64
	one := new(big.Int).Lsh(big.NewInt(1), g)
	atanInv := func(x int64) *big.Int {
		sum, x2 := new(big.Int), big.NewInt(x*x)
		term := new(big.Int).Quo(one, big.NewInt(x))
		for n, sign := int64(1), 1; term.Sign() > 0; n, sign = n+2, -sign {
			t := new(big.Int).Quo(term, big.NewInt(n))
			if sign > 0 {
				sum.Add(sum, t)
			} else {
				sum.Sub(sum, t)
			}
			term.Quo(term, x2)
		}
		return sum
	}
	pi := new(big.Int).Mul(atanInv(5), big.NewInt(16))
	pi.Sub(pi, new(big.Int).Mul(atanInv(239), big.NewInt(4)))
	return pi.Rsh(pi, 64)
}

// modp is the RFC 2409 / RFC 3526 prime of n bits with offset k.
func modp(n uint, k int64) *big.Int {
	p := new(big.Int).Lsh(big.NewInt(1), n)
	p.Sub(p, new(big.Int).Lsh(big.NewInt(1), n-64))
	p.Sub(p, big.NewInt(1))
	t := piFixed(n - 130)
	t.Add(t, big.NewInt(k))
	return p.Add(p, t.Lsh(t, 64))
}

func wellKnown(t *testing.T, name string) DHGroup {
	t.Helper()
	for _, g := range WellKnownDHGroups {
		if g.Name == name {
			return g
		}
	}
	t.Fatalf("no group %q in the table", name)
	return DHGroup{}
}

// The MODP entries are the primes the RFCs define by formula.
func TestDHGroupsMODP(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    uint
		k    int64
	}{
		{"RFC 2409 Oakley group 1 (768-bit MODP)", 768, 149686},
		{"RFC 2409 Oakley group 2 (1024-bit MODP)", 1024, 129093},
		{"RFC 3526 1536-bit MODP group 5", 1536, 741804},
		{"RFC 3526 2048-bit MODP group 14", 2048, 124476},
		{"RFC 3526 3072-bit MODP group 15", 3072, 1690314},
		{"RFC 3526 4096-bit MODP group 16", 4096, 240904},
		{"RFC 3526 6144-bit MODP group 17", 6144, 929484},
		{"RFC 3526 8192-bit MODP group 18", 8192, 4743158},
	} {
		p := modp(tc.n, tc.k)
		want := wellKnown(t, tc.name)
		got, ok := LookupDHGroup(append([]byte{0}, p.Bytes()...)) // a leading zero is ignored
		if !ok || got.Name != tc.name || got.Bits != p.BitLen() {
			t.Errorf("%s: looked up %+v (%v), want %+v", tc.name, got, ok, want)
		}
	}
	// A prime one off is nobody's.
	p := modp(1024, 129093)
	if g, ok := LookupDHGroup(p.Add(p, big.NewInt(2)).Bytes()); ok {
		t.Errorf("p+2 named %s", g.Name)
	}
}

// The RFC 5114 and RFC 7919 entries (and the MODP ones again) match
// OpenSSL's built-in named groups.
func TestDHGroupsOpenSSL(t *testing.T) {
	bin := peer.Require(t, "openssl")["openssl"]
	for group, name := range map[string]string{
		"ffdhe2048": "RFC 7919 ffdhe2048", "ffdhe3072": "RFC 7919 ffdhe3072", "ffdhe4096": "RFC 7919 ffdhe4096",
		"ffdhe6144": "RFC 7919 ffdhe6144", "ffdhe8192": "RFC 7919 ffdhe8192",
		"dh_1024_160": "RFC 5114 1024-bit MODP with 160-bit subgroup",
		"dh_2048_224": "RFC 5114 2048-bit MODP with 224-bit subgroup",
		"dh_2048_256": "RFC 5114 2048-bit MODP with 256-bit subgroup",
		"modp_2048":   "RFC 3526 2048-bit MODP group 14",
	} {
		out, err := exec.Command(bin, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:"+group).Output()
		if err != nil {
			t.Fatalf("%s: %v", group, err)
		}
		blk, _ := pem.Decode(out)
		if blk == nil {
			t.Fatalf("%s: no PEM in %q", group, out)
		}
		// PKCS#3 DHParameter and X9.42 DomainParameters both start with p.
		var seq asn1.RawValue
		if _, err := asn1.Unmarshal(blk.Bytes, &seq); err != nil {
			t.Fatal(err)
		}
		p := new(big.Int)
		if _, err := asn1.Unmarshal(seq.Bytes, &p); err != nil {
			t.Fatalf("%s: %v", group, err)
		}
		g, ok := LookupDHGroup(p.Bytes())
		if !ok || g.Name != name || g.Bits != p.BitLen() {
			t.Errorf("%s: looked up %+v (%v), want %s", group, g, ok, name)
		}
	}
}

// nginxDH1024 is the DH parameter nginx used when ssl_dhparam was not set
// (until 1.11.0): a prime shared by every such server.
const nginxDH1024 = `-----BEGIN DH PARAMETERS-----
MIGHAoGBALu8LcrYRnSQfEP89YDpz9vZWKP1aLQtSwju1OsPs1BMbAMCducQgAxc
y7qokiYUxb7spWWl/fHSh6K8BJvmd4Bg6RqSp1fjBI9osHb302zI8pul34HcLKcl
7OZicMyaUDXYzs7vnqAnSmOrHlj6/UmI0PZdFGdX2gcd8EXP4WubAgEC
-----END DH PARAMETERS-----`

func TestDHGroupsServerDefaults(t *testing.T) {
	blk, _ := pem.Decode([]byte(nginxDH1024))
	var params struct{ P, G *big.Int }
	if _, err := asn1.Unmarshal(blk.Bytes, &params); err != nil {
		t.Fatal(err)
	}
	g, ok := LookupDHGroup(params.P.Bytes())
	if !ok || g.Bits != 1024 || !strings.HasPrefix(g.Name, "nginx") {
		t.Errorf("nginx's default prime: %+v (%v)", g, ok)
	}
	if len(dhGroupsByHash) != len(WellKnownDHGroups) {
		t.Errorf("%d groups, %d distinct hashes", len(WellKnownDHGroups), len(dhGroupsByHash))
	}
}
