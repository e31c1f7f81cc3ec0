package active

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"math/big"
	"strings"
	"sync"

	"github.com/starttls-go/starttls/tlsprobe"
)

// robotVariant is one premaster-secret encoding of the ROBOT scan
// (Böck, Somorovsky, Young 2018): the PKCS#1 v1.5 block, before raw RSA.
type robotVariant struct {
	name  string
	build func(k int, ver uint16) []byte
}

// nonZero fills n random bytes, none of them zero (PKCS#1 padding bytes,
// and payloads that must not contain a separator by accident).
func nonZero(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		for b[i] == 0 {
			var one [1]byte
			_, _ = rand.Read(one[:])
			b[i] = one[0]
		}
	}
	return b
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// robotVariants: the correct encoding first (the baseline), then the four
// malformations. k is the modulus size in bytes; the padding is k-51
// bytes so that every block is exactly k bytes.
var robotVariants = []robotVariant{
	{"correct", func(k int, v uint16) []byte {
		return cat([]byte{0, 2}, nonZero(k-51), []byte{0, byte(v >> 8), byte(v)}, nonZero(46))
	}},
	{"wrong first bytes", func(k int, v uint16) []byte {
		return cat([]byte{0x41, 0x17}, nonZero(k-51), []byte{0, byte(v >> 8), byte(v)}, nonZero(46))
	}},
	{"0x00 in the wrong place", func(k int, _ uint16) []byte {
		return cat([]byte{0, 2}, nonZero(k-51), []byte{0x11}, nonZero(46), []byte{0, 0x11})
	}},
	{"no 0x00 separator", func(k int, _ uint16) []byte {
		return cat([]byte{0, 2}, nonZero(k-51), []byte{0x11, 0x11, 0x11}, nonZero(46))
	}},
	{"wrong version", func(k int, _ uint16) []byte {
		return cat([]byte{0, 2}, nonZero(k-51), []byte{0, 2, 2}, nonZero(46))
	}},
}

// rawRSA encrypts a k-byte block without padding (the block is the padding).
func rawRSA(pub *rsa.PublicKey, block []byte) []byte {
	m := new(big.Int).SetBytes(block)
	c := new(big.Int).Exp(m, big.NewInt(int64(pub.E)), pub.N)
	return c.FillBytes(make([]byte, pub.Size()))
}

// robotTry runs one variant on a fresh connection: the first flight, then
// ClientKeyExchange, ChangeCipherSpec and a Finished of random bytes in one
// write, and returns the server's reaction.
func robotTry(ctx context.Context, dial tlsprobe.Dialer, o tlsprobe.Options, v tlsprobe.Version, suites []uint16, variant robotVariant) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	f, err := openFlight(ctx, dial, newHello12(uint16(v), suites, o.ServerName))
	if err != nil {
		return "", err
	}
	defer f.close()
	if len(f.ff.certs) == 0 {
		return "", fmt.Errorf("%w: no certificate in the first flight", tlsprobe.ErrNotTLS)
	}
	pub, err := rsaKeyOf(f.ff.certs[0])
	if err != nil {
		return "", err
	}
	if pub.Size() < 64 {
		return "", fmt.Errorf("%w: %d-bit RSA key too small for the probe", tlsprobe.ErrNotTLS, pub.Size()*8)
	}
	ckx := binaryPrefixed16(rawRSA(pub, variant.build(pub.Size(), uint16(v))))
	if v == tlsprobe.SSL30 {
		ckx = ckx[2:]
	}
	msg := append([]byte{16, byte(len(ckx) >> 16), byte(len(ckx) >> 8), byte(len(ckx))}, ckx...)
	finished := make([]byte, 40)
	_, _ = rand.Read(finished)
	out := tlsprobe.Record{Type: tlsprobe.RecordHandshake, Version: uint16(v), Body: msg}.Marshal()
	out = append(out, tlsprobe.Record{Type: tlsprobe.RecordChangeCipherSpec, Version: uint16(v), Body: []byte{1}}.Marshal()...)
	out = append(out, tlsprobe.Record{Type: tlsprobe.RecordHandshake, Version: uint16(v), Body: finished}.Marshal()...)
	if _, err := f.conn.Write(out); err != nil {
		return "write failed (connection closed)", nil
	}
	a, err := f.readAnswer()
	if err != nil {
		return "", err
	}
	return a.String(), nil
}

// ROBOT looks for a Bleichenbacher oracle in RSA key exchange: the five
// ROBOT premaster encodings, each on its own connection (concurrently),
// each followed by ChangeCipherSpec and a bogus Finished. A server that
// reacts the same way to all of them (typically bad_record_mac after the
// Finished) gives nothing away; one that reacts differently to some is an
// oracle. Variants that differ from the baseline are tried once more, with
// the baseline, to rule out noise: 5 connections, at most 10. suites are
// the server's TLS_RSA_* suites for v.
func ROBOT(ctx context.Context, dial tlsprobe.Dialer, o tlsprobe.Options, v tlsprobe.Version, suites []uint16) (VulnResult, error) {
	o = o.WithDefaults()
	if len(suites) == 0 {
		return VulnResult{}, fmt.Errorf("%w: no RSA key-exchange suite to probe with", tlsprobe.ErrDeclined)
	}
	round := func(idx []int) ([]string, error) {
		got := make([]string, len(idx))
		errs := make([]error, len(idx))
		var wg sync.WaitGroup
		for i, vi := range idx {
			wg.Go(func() { got[i], errs[i] = robotTry(ctx, dial, o, v, suites, robotVariants[vi]) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				return nil, fmt.Errorf("%s: %w", robotVariants[idx[i]].name, err)
			}
		}
		return got, nil
	}
	all := make([]int, len(robotVariants))
	for i := range all {
		all[i] = i
	}
	first, err := round(all)
	if err != nil {
		return VulnResult{}, err
	}
	again := []int{0}
	for i := 1; i < len(first); i++ {
		if first[i] != first[0] {
			again = append(again, i)
		}
	}
	if len(again) == 1 {
		return VulnResult{Evidence: fmt.Sprintf("all %d RSA premaster encodings were answered alike (%s)", len(first), first[0])}, nil
	}
	second, err := round(again)
	if err != nil {
		return VulnResult{}, err
	}
	var diff []string
	for j, vi := range again {
		if second[j] != first[vi] {
			return VulnResult{}, fmt.Errorf("the server's answers are not repeatable (%s: %s, then %s): no verdict", robotVariants[vi].name, first[vi], second[j])
		}
		if vi != 0 {
			diff = append(diff, fmt.Sprintf("%s: %s", robotVariants[vi].name, first[vi]))
		}
	}
	return VulnResult{Vulnerable: true, Evidence: fmt.Sprintf("RSA key exchange with a correctly padded premaster got %s, but %s (repeated twice)",
		first[0], strings.Join(diff, "; "))}, nil
}
