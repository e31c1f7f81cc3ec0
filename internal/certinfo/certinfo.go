// Package certinfo summarises and verifies a served certificate chain for
// reports (connect, check, scan), independently of whether the handshake
// itself verified it, so that an --insecure session still says what is wrong.
package certinfo

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Cert is one certificate of the chain, as reported.
type Cert struct {
	Subject            string    `json:"subject"`
	Issuer             string    `json:"issuer"`
	DNSNames           []string  `json:"dns_names,omitempty"`
	IPAddresses        []string  `json:"ip_addresses,omitempty"`
	NotBefore          time.Time `json:"not_before"`
	NotAfter           time.Time `json:"not_after"`
	DaysLeft           int       `json:"days_left"`
	KeyType            string    `json:"key_type"`
	KeyBits            int       `json:"key_bits"`
	SignatureAlgorithm string    `json:"signature_algorithm"`
	Serial             string    `json:"serial"`
	SHA256             string    `json:"sha256"`
	IsCA               bool      `json:"is_ca"`
	SelfSigned         bool      `json:"self_signed"`
}

// Describe summarises each certificate of chain.
func Describe(chain []*x509.Certificate, now time.Time) []Cert {
	out := make([]Cert, 0, len(chain))
	for _, c := range chain {
		sum := sha256.Sum256(c.Raw)
		kt, bits := KeyInfo(c)
		d := Cert{
			Subject:            c.Subject.String(),
			Issuer:             c.Issuer.String(),
			DNSNames:           c.DNSNames,
			NotBefore:          c.NotBefore.UTC(),
			NotAfter:           c.NotAfter.UTC(),
			DaysLeft:           int(c.NotAfter.Sub(now).Hours() / 24),
			KeyType:            kt,
			KeyBits:            bits,
			SignatureAlgorithm: c.SignatureAlgorithm.String(),
			Serial:             c.SerialNumber.Text(16),
			SHA256:             hex.EncodeToString(sum[:]),
			IsCA:               c.IsCA,
			SelfSigned:         c.Subject.String() == c.Issuer.String() && SignedBy(c, c),
		}
		for _, ip := range c.IPAddresses {
			d.IPAddresses = append(d.IPAddresses, ip.String())
		}
		out = append(out, d)
	}
	return out
}

// KeyInfo names the public key's algorithm and size in bits.
func KeyInfo(c *x509.Certificate) (string, int) {
	switch k := c.PublicKey.(type) {
	case *rsa.PublicKey:
		return "RSA", k.N.BitLen()
	case *ecdsa.PublicKey:
		return "ECDSA " + k.Curve.Params().Name, k.Curve.Params().BitSize
	case ed25519.PublicKey:
		return "Ed25519", 256
	}
	return "unknown", 0
}

// Verification is the outcome of checking a chain against roots and a name.
type Verification struct {
	Trusted   bool   `json:"trusted"`    // chains to a root
	NameMatch bool   `json:"name_match"` // the leaf is valid for the name
	Expired   bool   `json:"expired"`    // the leaf is outside its validity period
	OK        bool   `json:"ok"`         // all of the above hold
	Error     string `json:"error,omitempty"`
	// ChainInOrder is false when the served intermediates are not in issuing order.
	ChainInOrder bool `json:"chain_in_order"`
}

// Verify checks chain (leaf first, as served) for name. roots nil means
// the system pool.
func Verify(chain []*x509.Certificate, roots *x509.CertPool, name string, now time.Time) Verification {
	var v Verification
	if len(chain) == 0 {
		v.Error = "no certificate served"
		return v
	}
	leaf := chain[0]
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	v.Expired = now.Before(leaf.NotBefore) || now.After(leaf.NotAfter)
	// Trust is judged at a time inside the leaf's validity so that an expired
	// certificate is reported as expired, not also as untrusted.
	topts := opts
	if v.Expired {
		topts.CurrentTime = leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	}
	terr := verifyTrust(chain, topts)
	v.Trusted = terr == nil
	v.NameMatch = name == "" || leaf.VerifyHostname(strings.TrimSuffix(name, ".")) == nil
	v.ChainInOrder = inOrder(chain)
	v.OK = v.Trusted && v.NameMatch && !v.Expired
	var errs []string
	if terr != nil {
		errs = append(errs, describeErr(terr))
	}
	if v.Expired {
		errs = append(errs, fmt.Sprintf("certificate expired or not yet valid (valid %s to %s)",
			leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly)))
	}
	if !v.NameMatch {
		errs = append(errs, fmt.Sprintf("certificate is not valid for %q (names: %s)", name, strings.Join(names(leaf), ", ")))
	}
	v.Error = strings.Join(errs, "; ")
	return v
}

func inOrder(chain []*x509.Certificate) bool {
	for i := 0; i+1 < len(chain); i++ {
		if !SignedBy(chain[i], chain[i+1]) {
			return false
		}
	}
	return true
}

func names(c *x509.Certificate) []string {
	n := append([]string(nil), c.DNSNames...)
	for _, ip := range c.IPAddresses {
		n = append(n, ip.String())
	}
	if len(n) == 0 && c.Subject.CommonName != "" {
		n = append(n, "CN="+c.Subject.CommonName)
	}
	return n
}

func describeErr(err error) string {
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return "certificate signed by an unknown authority"
	}
	return err.Error()
}

// IsIP reports whether name is an IP literal (no SNI is sent for those).
func IsIP(name string) bool { return net.ParseIP(strings.Trim(name, "[]")) != nil }
