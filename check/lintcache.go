package check

import (
	"crypto/sha256"
	"crypto/x509"

	"github.com/starttls-go/starttls/internal/certinfo"
)

// lintCache keeps the lint results of recent chains. Linting is a pure
// function of the chain's bytes (zlint judges the fields; whether a
// public root vouches for the chain is judged at the leaf's own issue
// time), and it is the costliest part of a session's CPU: a zcrypto
// parse, a chain build against the system roots, a hundred lints. A scan
// meets the same chain again and again (a provider's hosts share one), so
// each distinct chain is linted once per process.
var lintCache certinfo.Memo[[sha256.Size]byte, []Lint]

// lintCertificate is lintChain, remembered by the chain's bytes.
func lintCertificate(chain []*x509.Certificate) []Lint {
	if len(chain) == 0 {
		return nil
	}
	out := lintCache.Get(certinfo.ChainKey(chain), func() []Lint { return lintChain(chain) })
	return append([]Lint(nil), out...)
}
