// Package certs makes throwaway certificate authorities and leaf certificates
// for `starttls serve`, `starttls demo` and the tests. Nothing here is meant
// for production keys: they live in memory or in a temporary directory.
package certs

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// KeyType selects the leaf's key algorithm.
type KeyType string

// Key types a leaf can have. RSA1024 exists to build deliberately weak
// servers for the checker's tests.
const (
	ECDSAP256 KeyType = "ecdsa-p256"
	RSA2048   KeyType = "rsa-2048"
	RSA1024   KeyType = "rsa-1024"
)

// CA is a self-signed certificate authority held in memory.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
}

// Leaf is an issued end-entity certificate with its key.
type Leaf struct {
	Cert    *x509.Certificate
	CertPEM []byte // leaf only
	KeyPEM  []byte
	// ChainPEM is the leaf followed by the issuing CA, as servers should send it.
	ChainPEM []byte
	TLS      tls.Certificate
}

// LeafOptions describes the certificate to issue. Zero values give a
// one-year ECDSA P-256 certificate for localhost, 127.0.0.1 and ::1.
type LeafOptions struct {
	Hosts     []string // DNS names and IP addresses for the SAN
	NotBefore time.Time
	NotAfter  time.Time
	Key       KeyType
	// Modify, when set, edits the template before signing (tests use it to
	// build certificates with specific flaws).
	Modify func(*x509.Certificate)
}

// NewCA makes a CA whose subject is name.
func NewCA(name string) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"starttls test CA"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(2, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Pool returns a pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Issue signs a leaf certificate.
func (ca *CA) Issue(o LeafOptions) (*Leaf, error) {
	if len(o.Hosts) == 0 {
		o.Hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	now := time.Now()
	if o.NotBefore.IsZero() {
		o.NotBefore = now.Add(-time.Hour)
	}
	if o.NotAfter.IsZero() {
		o.NotAfter = now.AddDate(1, 0, 0)
	}
	var key crypto.Signer
	var err error
	switch o.Key {
	case "", ECDSAP256:
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RSA2048:
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	case RSA1024:
		key, err = rsa.GenerateKey(rand.Reader, 1024)
	default:
		return nil, fmt.Errorf("certs: unknown key type %q", o.Key)
	}
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: o.Hosts[0]},
		NotBefore:    o.NotBefore,
		NotAfter:     o.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if _, ok := key.(*rsa.PrivateKey); ok {
		tmpl.KeyUsage |= x509.KeyUsageKeyEncipherment
	}
	for _, h := range o.Hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	if o.Modify != nil {
		o.Modify(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	l := &Leaf{
		Cert:    cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
	l.ChainPEM = append(append([]byte{}, l.CertPEM...), ca.CertPEM...)
	l.TLS = tls.Certificate{Certificate: [][]byte{der, ca.Cert.Raw}, PrivateKey: key, Leaf: cert}
	return l, nil
}

// SelfSigned returns a leaf that signs itself, for "untrusted certificate" cases.
func SelfSigned(hosts ...string) (*Leaf, error) {
	ca, err := NewCA("self-signed")
	if err != nil {
		return nil, err
	}
	l, err := ca.Issue(LeafOptions{Hosts: hosts})
	if err != nil {
		return nil, err
	}
	// Present only the leaf: its issuer is nowhere to be found.
	l.TLS.Certificate = l.TLS.Certificate[:1]
	l.ChainPEM = l.CertPEM
	return l, nil
}

// WriteFiles writes ca.pem into dir and returns its path.
func (ca *CA) WriteFiles(dir string) (string, error) {
	p := filepath.Join(dir, "ca.pem")
	return p, os.WriteFile(p, ca.CertPEM, 0o644)
}

// WriteFiles writes NAME.pem (leaf and chain) and NAME.key into dir.
func (l *Leaf) WriteFiles(dir, name string) (certFile, keyFile string, err error) {
	if name == "" {
		return "", "", errors.New("certs: empty file name")
	}
	certFile = filepath.Join(dir, name+".pem")
	keyFile = filepath.Join(dir, name+".key")
	if err = os.WriteFile(certFile, l.ChainPEM, 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, l.KeyPEM, 0o600)
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		// crypto/rand never fails on Linux; a fixed serial keeps tests running if it does.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
