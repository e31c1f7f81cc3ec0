package peer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
)

// DiffServer is one server of the differential set: a URL for `starttls
// check`, the matching testssl --starttls protocol and address, and the CA
// file that makes its certificate trusted (when it can be).
type DiffServer struct {
	Name    string // e.g. postfix-modern
	URL     string // smtp://127.0.0.1:PORT
	Proto   string // testssl's --starttls value
	Addr    string // host:port
	CAFile  string
	Comment string // what is deliberately special about it
}

// DiffServerNames lists the servers StartDiffSet knows, in start order.
var DiffServerNames = []string{
	"postfix-modern", "postfix-legacy", "postfix-dhe1024",
	"postfix-expired", "postfix-selfsigned", "postfix-mismatch",
	"dovecot-imap", "dovecot-pop3", "openssl-s_server",
}

// StartDiffSet starts the named servers (all of DiffServerNames when none
// are given) on loopback with deliberately varied TLS configurations, for
// the differential test of `starttls check` against testssl.sh.
func StartDiffSet(t testing.TB, names ...string) []DiffServer {
	t.Helper()
	if len(names) == 0 {
		names = DiffServerNames
	}
	var out []DiffServer
	var dc *Dovecot
	for _, n := range names {
		switch n {
		case "dovecot-imap", "dovecot-pop3":
			if dc == nil {
				dc = StartDovecot(t, DovecotOptions{})
			}
			a, proto := dc.IMAPAddr, "imap"
			if n == "dovecot-pop3" {
				a, proto = dc.POP3Addr, "pop3"
			}
			out = append(out, DiffServer{Name: n, URL: proto + "://" + a, Proto: proto, Addr: a,
				CAFile: dc.CAFile, Comment: "Dovecot " + dc.Version + ", TLS >= 1.2, its default suites"})
		case "openssl-s_server":
			s := StartOpenSSLServer(t, OpenSSLServerOptions{Args: []string{
				"-legacy_renegotiation", "-client_renegotiation", "-no_ticket", "-comp"}})
			out = append(out, DiffServer{Name: n, URL: "postgres://" + s.Addr, Proto: "postgres", Addr: s.Addr,
				CAFile: s.CAFile, Comment: s.Version + " s_server -legacy_renegotiation -client_renegotiation -no_ticket -comp, behind an SSLRequest front"})
		default:
			o, comment, ok := diffPostfix(t, n)
			if !ok {
				t.Fatalf("unknown differential server %q (have %v)", n, DiffServerNames)
			}
			p := StartPostfix(t, o)
			out = append(out, DiffServer{Name: n, URL: "smtp://" + p.SMTPAddr, Proto: "smtp", Addr: p.SMTPAddr,
				CAFile: p.CAFile, Comment: "Postfix " + p.Version + ": " + comment})
		}
	}
	return out
}

// diffHosts are the names the served certificates are for, unless a
// server is about a mismatch.
var diffHosts = []string{"mail.test", "localhost", "127.0.0.1", "127.0.0.2"}

// diffPostfix returns the options of a Postfix member of the set.
func diffPostfix(t testing.TB, name string) (PostfixOptions, string, bool) {
	t.Helper()
	switch name {
	case "postfix-modern":
		return PostfixOptions{MainCF: []string{
			"smtpd_tls_ciphers = high",
			"smtpd_tls_mandatory_ciphers = high",
			"tls_high_cipherlist = ECDHE+AESGCM:ECDHE+CHACHA20",
		}}, "TLS 1.2-1.3, ECDHE with AEAD only", true
	case "postfix-legacy":
		// OpenSSL 3 allows TLS 1.0/1.1 (SHA-1 handshake signatures) and
		// 3DES only at security level 0; RC4 lives in the legacy provider,
		// which Postfix does not load, so it stays off.
		return PostfixOptions{MainCF: []string{
			"smtpd_tls_protocols = >=TLSv1",
			"smtpd_tls_mandatory_protocols = >=TLSv1",
			"smtpd_tls_ciphers = low",
			"smtpd_tls_mandatory_ciphers = low",
			"tls_low_cipherlist = ALL:3DES:@SECLEVEL=0",
		}}, "TLS 1.0-1.3, CBC, 3DES and RSA key exchange at OpenSSL security level 0", true
	case "postfix-dhe1024":
		dh := filepath.Join(tempDir(t, "dh"), "dh1024.pem")
		if out, err := run(t, 2*time.Minute, "openssl", "dhparam", "-out", dh, "1024"); err != nil {
			t.Fatalf("openssl dhparam 1024: %v\n%s", err, out)
		}
		return PostfixOptions{MainCF: []string{
			"smtpd_tls_protocols = >=TLSv1.2, <=TLSv1.2",
			"smtpd_tls_mandatory_protocols = >=TLSv1.2, <=TLSv1.2",
			"smtpd_tls_ciphers = high",
			"smtpd_tls_mandatory_ciphers = high",
			"tls_high_cipherlist = kDHE+aRSA:@SECLEVEL=1",
			"smtpd_tls_dh1024_param_file = " + dh,
		}}, "TLS 1.2 only, DHE only, a 1024-bit DH group (openssl dhparam 1024)", true
	case "postfix-expired":
		return PostfixOptions{Leaf: func(ca *certs.CA) (*certs.Leaf, error) {
			return ca.Issue(certs.LeafOptions{Hosts: diffHosts, Key: certs.RSA2048,
				NotBefore: time.Now().AddDate(0, 0, -60), NotAfter: time.Now().AddDate(0, 0, -30)})
		}}, "a certificate that expired 30 days ago", true
	case "postfix-selfsigned":
		return PostfixOptions{Leaf: func(*certs.CA) (*certs.Leaf, error) { return selfSigned(diffHosts) }},
			"a self-signed certificate (not in the CA file)", true
	case "postfix-mismatch":
		return PostfixOptions{Leaf: func(ca *certs.CA) (*certs.Leaf, error) {
			return ca.Issue(certs.LeafOptions{Hosts: []string{"other.example"}, Key: certs.RSA2048})
		}}, "a trusted certificate for other.example only", true
	}
	return PostfixOptions{}, "", false
}

// selfSigned makes a leaf that is its own issuer (certs.SelfSigned has an
// unknown issuer instead).
func selfSigned(hosts []string) (*certs.Leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	sn, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: hosts[0]},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("self-signed key: %w", err)
	}
	l := &certs.Leaf{Cert: cert,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		TLS:     tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}
	l.ChainPEM = l.CertPEM
	return l, nil
}
