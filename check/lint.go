package check

import (
	"crypto/x509"
	"sort"
	"sync"

	zx509 "github.com/zmap/zcrypto/x509"
	"github.com/zmap/zlint/v3"
	"github.com/zmap/zlint/v3/lint"
)

// lintSources are the rule sets applied to the leaf. Only errors and fatal
// results are reported: warnings and notices are advice for CAs, not for
// the server's operator.
var lintSources = lint.SourceList{lint.RFC5280, lint.CABFBaselineRequirements}

var (
	lintRegistryOnce sync.Once
	lintRegistry     lint.Registry
)

func registry() lint.Registry {
	lintRegistryOnce.Do(func() {
		r, err := lint.GlobalRegistry().Filter(lint.FilterOptions{IncludeSources: lintSources})
		if err != nil {
			r = lint.GlobalRegistry()
		}
		lintRegistry = r
	})
	return lintRegistry
}

// lintCertificate runs zlint on the leaf of chain.
func lintCertificate(chain []*x509.Certificate) []Lint {
	if len(chain) == 0 {
		return nil
	}
	zc, err := zx509.ParseCertificate(chain[0].Raw)
	if err != nil {
		return []Lint{{Name: "parse", Status: "fatal", Details: err.Error(), Source: "zcrypto"}}
	}
	rs := zlint.LintCertificateEx(zc, registry())
	var out []Lint
	for name, res := range rs.Results {
		if res == nil || res.Status < lint.Error {
			continue
		}
		src := ""
		if l := registry().ByName(name); l != nil {
			src = string(l.Source)
		}
		out = append(out, Lint{Name: name, Status: res.Status.String(), Details: res.Details, Source: src})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
