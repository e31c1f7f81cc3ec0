package check

import (
	"crypto/x509"
	"reflect"
	"testing"

	"github.com/starttls-go/starttls/internal/certs"
)

// The remembered lint results are the computed ones, per chain: a second
// chain does not get the first one's, and callers get their own copy.
func TestLintCacheKeyedByChain(t *testing.T) {
	ca, err := certs.NewCA("lint cache test CA")
	if err != nil {
		t.Fatal(err)
	}
	var chains [][]*x509.Certificate
	for range 2 {
		leaf, err := ca.Issue(certs.LeafOptions{})
		if err != nil {
			t.Fatal(err)
		}
		chains = append(chains, []*x509.Certificate{leaf.Cert})
	}
	for _, chain := range chains {
		want := lintChain(chain)
		first, second := lintCertificate(chain), lintCertificate(chain)
		if !reflect.DeepEqual(first, want) || !reflect.DeepEqual(second, want) {
			t.Errorf("cached lints %v, %v; computed %v", first, second, want)
		}
		if len(second) > 0 {
			second[0].Name = "changed by a caller"
			if again := lintCertificate(chain); again[0].Name == "changed by a caller" {
				t.Error("a caller's change reached the cache")
			}
		}
	}
	n := lintCache.Len()
	if n < 2 {
		t.Errorf("%d cached chains after two distinct chains", n)
	}
}
