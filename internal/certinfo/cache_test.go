package certinfo

import (
	"crypto/x509"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
)

// The remembered verdicts are the computed ones: a signature by the right
// key and not by another, trust against one pool and not another.
func TestCachesAgreeWithX509(t *testing.T) {
	ca, err := certs.NewCA("certinfo cache CA")
	if err != nil {
		t.Fatal(err)
	}
	other, err := certs.NewCA("certinfo other CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // computed, then remembered
		if !SignedBy(leaf.Cert, ca.Cert) {
			t.Error("leaf not signed by its CA")
		}
		if SignedBy(leaf.Cert, other.Cert) {
			t.Error("leaf signed by another CA")
		}
		if !SignedBy(ca.Cert, ca.Cert) || SignedBy(leaf.Cert, leaf.Cert) {
			t.Error("self-signatures: the CA's must verify, the leaf's must not")
		}
	}
	chain := []*x509.Certificate{leaf.Cert}
	now := time.Now()
	for range 2 {
		good := Verify(chain, ca.Pool(), "localhost", now)
		bad := Verify(chain, other.Pool(), "localhost", now)
		if !good.Trusted || !good.OK {
			t.Errorf("with its CA: %+v", good)
		}
		if bad.Trusted || bad.OK || bad.Error == "" {
			t.Errorf("with another CA: %+v", bad)
		}
	}
	// The time is part of the key: after the leaf's end it is expired.
	if v := Verify(chain, ca.Pool(), "localhost", leaf.Cert.NotAfter.Add(time.Hour)); !v.Expired || v.OK {
		t.Errorf("after NotAfter: %+v", v)
	}
}
