package certinfo

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"sync"
	"time"
)

// A scan meets the same certificates again and again (a provider's hosts
// share a chain), and judging one costs several signature checks of
// ~0.1 ms each: the largest part of a session's CPU after the handshake.
// These caches remember the verdicts that depend only on the
// certificates' bytes (and, for trust, the roots and the second of the
// check), bounded; when full they start again.
const cacheSize = 4096

// Memo remembers the results of a pure function by key, at most 4096 of
// them: when full it starts again, which is crude and rare (a scan meets
// few distinct certificates per minute). The function runs outside the
// lock, so two goroutines may compute the same value once each.
type Memo[K comparable, V any] struct {
	mu sync.Mutex
	m  map[K]V
}

// Get returns the remembered value for k, or computes, remembers and
// returns it.
func (c *Memo[K, V]) Get(k K, compute func() V) V {
	c.mu.Lock()
	v, hit := c.m[k]
	c.mu.Unlock()
	if hit {
		return v
	}
	v = compute()
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheSize {
		c.m = make(map[K]V)
	}
	c.m[k] = v
	c.mu.Unlock()
	return v
}

// Len is how many values are remembered.
func (c *Memo[K, V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// ChainKey identifies a chain by its certificates' bytes (each
// length-prefixed, so that no two chains share a key by concatenation).
func ChainKey(chain []*x509.Certificate) [sha256.Size]byte {
	h := sha256.New()
	var n [8]byte
	for _, c := range chain {
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

type sigKey [2][sha256.Size]byte

var sigCache Memo[sigKey, bool]

// SignedBy reports whether parent's key signed child
// (child.CheckSignatureFrom(parent) == nil), remembered by both
// certificates' bytes.
func SignedBy(child, parent *x509.Certificate) bool {
	k := sigKey{sha256.Sum256(child.Raw), sha256.Sum256(parent.Raw)}
	return sigCache.Get(k, func() bool { return child.CheckSignatureFrom(parent) == nil })
}

type trustKey struct {
	chain [sha256.Size]byte
	roots *x509.CertPool
	at    int64 // Unix seconds: certificates' times have no finer grain
}

var trustCache Memo[trustKey, error]

// verifyTrust is leaf.Verify(opts) for the chain, remembered by the
// chain's bytes, the roots and opts.CurrentTime's second. opts must be
// Verify's: the chain's intermediates, server auth, no name.
func verifyTrust(chain []*x509.Certificate, opts x509.VerifyOptions) error {
	k := trustKey{chain: ChainKey(chain), roots: opts.Roots, at: opts.CurrentTime.Truncate(time.Second).Unix()}
	return trustCache.Get(k, func() error {
		_, err := chain[0].Verify(opts)
		return err
	})
}
