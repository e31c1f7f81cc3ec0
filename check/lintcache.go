package check

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
)

// lintCacheSize bounds the chains whose lint results are kept.
const lintCacheSize = 4096

// lintCache keeps the lint results of recent chains. Linting is a pure
// function of the chain's bytes (zlint judges the fields; whether a
// public root vouches for the chain is judged at the leaf's own issue
// time), and it is the costliest part of a session's CPU: a zcrypto
// parse, a chain build against the system roots, a hundred lints. A scan
// meets the same chain again and again (a provider's hosts share one), so
// each distinct chain is linted once per process.
var lintCache = struct {
	sync.Mutex
	m map[[sha256.Size]byte][]Lint
}{m: map[[sha256.Size]byte][]Lint{}}

// lintCertificate is lintChain, remembered by the chain's bytes.
func lintCertificate(chain []*x509.Certificate) []Lint {
	if len(chain) == 0 {
		return nil
	}
	h := sha256.New()
	var n [8]byte
	for _, c := range chain {
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var key [sha256.Size]byte
	h.Sum(key[:0])
	lintCache.Lock()
	out, ok := lintCache.m[key]
	lintCache.Unlock()
	if !ok {
		out = lintChain(chain)
		lintCache.Lock()
		if len(lintCache.m) >= lintCacheSize {
			clear(lintCache.m) // crude, and rare: a scan meets few distinct chains per minute
		}
		lintCache.m[key] = out
		lintCache.Unlock()
	}
	return append([]Lint(nil), out...)
}
