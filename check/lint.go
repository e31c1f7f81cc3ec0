package check

import (
	"crypto/x509"
	"sort"
	"sync"
	"time"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// Only errors and fatal results are reported: warnings and notices are
// advice for CAs, not for the server's operator. RFC 5280 applies to every
// certificate; the CA/Browser Forum's Baseline Requirements only to chains
// that a public root vouches for (a private CA may issue for localhost).
var (
	registryOnce             sync.Once
	rfcRegistry, pubRegistry lint.Registry
)

func registries() (rfc, public lint.Registry) {
	registryOnce.Do(func() {
		var err error
		if rfcRegistry, err = lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lint.SourceList{lint.RFC5280}}); err != nil {
			rfcRegistry = lint.GlobalRegistry()
		}
		if pubRegistry, err = lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lint.SourceList{lint.RFC5280, lint.CABFBaselineRequirements}}); err != nil {
			pubRegistry = lint.GlobalRegistry()
		}
	})
	return rfcRegistry, pubRegistry
}

// publiclyTrusted reports whether chain verifies against the system roots alone.
func publiclyTrusted(chain []*x509.Certificate) bool {
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	_, err := chain[0].Verify(x509.VerifyOptions{Intermediates: inter, CurrentTime: chain[0].NotBefore.Add(time.Minute)})
	return err == nil
}

// lintChain runs zlint on the leaf of chain.
func lintChain(chain []*x509.Certificate) []Lint {
	if len(chain) == 0 {
		return nil
	}
	zc, err := zx509.ParseCertificate(chain[0].Raw)
	if err != nil {
		return []Lint{{Name: "parse", Status: "fatal", Details: err.Error(), Source: "zcrypto"}}
	}
	reg, pub := registries()
	if publiclyTrusted(chain) {
		reg = pub
	}
	rs := zlint.LintCertificateEx(zc, reg)
	var out []Lint
	for name, res := range rs.Results {
		if res == nil || res.Status < lint.Error {
			continue
		}
		src := ""
		if l := reg.ByName(name); l != nil {
			src = string(l.Source)
		}
		out = append(out, Lint{Name: name, Status: res.Status.String(), Details: res.Details, Source: src})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
