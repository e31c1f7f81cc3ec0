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

type sigKey [2][sha256.Size]byte

var sigCache = struct {
	sync.Mutex
	m map[sigKey]bool
}{m: map[sigKey]bool{}}

// SignedBy reports whether parent's key signed child
// (child.CheckSignatureFrom(parent) == nil), remembered by both
// certificates' bytes.
func SignedBy(child, parent *x509.Certificate) bool {
	k := sigKey{sha256.Sum256(child.Raw), sha256.Sum256(parent.Raw)}
	sigCache.Lock()
	ok, hit := sigCache.m[k]
	sigCache.Unlock()
	if hit {
		return ok
	}
	ok = child.CheckSignatureFrom(parent) == nil
	sigCache.Lock()
	if len(sigCache.m) >= cacheSize {
		clear(sigCache.m)
	}
	sigCache.m[k] = ok
	sigCache.Unlock()
	return ok
}

type trustKey struct {
	chain [sha256.Size]byte
	roots *x509.CertPool
	at    int64 // Unix seconds: certificates' times have no finer grain
}

var trustCache = struct {
	sync.Mutex
	m map[trustKey]error
}{m: map[trustKey]error{}}

// verifyTrust is leaf.Verify(opts) for the chain, remembered by the
// chain's bytes, the roots and opts.CurrentTime's second. opts must be
// Verify's: the chain's intermediates, server auth, no name.
func verifyTrust(chain []*x509.Certificate, opts x509.VerifyOptions) error {
	h := sha256.New()
	var n [8]byte
	for _, c := range chain {
		binary.BigEndian.PutUint64(n[:], uint64(len(c.Raw)))
		h.Write(n[:])
		h.Write(c.Raw)
	}
	k := trustKey{roots: opts.Roots, at: opts.CurrentTime.Truncate(time.Second).Unix()}
	h.Sum(k.chain[:0])
	trustCache.Lock()
	err, hit := trustCache.m[k]
	trustCache.Unlock()
	if hit {
		return err
	}
	_, err = chain[0].Verify(opts)
	trustCache.Lock()
	if len(trustCache.m) >= cacheSize {
		clear(trustCache.m)
	}
	trustCache.m[k] = err
	trustCache.Unlock()
	return err
}
