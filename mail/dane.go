package mail

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// TLSA usages, selectors and matching types (RFC 6698 §2.1, RFC 7218).
const (
	UsagePKIXTA = 0
	UsagePKIXEE = 1
	UsageDANETA = 2
	UsageDANEEE = 3

	SelectorCert = 0
	SelectorSPKI = 1

	MatchFull   = 0
	MatchSHA256 = 1
	MatchSHA512 = 2
)

// TLSA is one TLSA record as reported.
type TLSA struct {
	Usage        uint8  `json:"usage"`
	Selector     uint8  `json:"selector"`
	MatchingType uint8  `json:"matching_type"`
	Data         string `json:"data"` // hex
	// Usable is false for usages 0/1 (RFC 7672 §3.1.3) and unknown or
	// malformed parameters.
	Usable bool `json:"usable"`
	// Matched says whether this record matched the presented chain.
	Matched bool   `json:"matched"`
	Problem string `json:"problem,omitempty"`
}

func (t TLSA) String() string {
	return fmt.Sprintf("%d %d %d %s", t.Usage, t.Selector, t.MatchingType, t.Data)
}

// NewTLSA builds a record and judges whether it is usable for SMTP.
func NewTLSA(usage, selector, matching uint8, data string) TLSA {
	t := TLSA{Usage: usage, Selector: selector, MatchingType: matching, Data: strings.ToLower(data)}
	raw, err := hex.DecodeString(t.Data)
	switch {
	case usage == UsagePKIXTA || usage == UsagePKIXEE:
		t.Problem = "PKIX usage, not for SMTP (RFC 7672 §3.1.3)"
	case usage != UsageDANETA && usage != UsageDANEEE:
		t.Problem = fmt.Sprintf("unknown usage %d", usage)
	case selector != SelectorCert && selector != SelectorSPKI:
		t.Problem = fmt.Sprintf("unknown selector %d", selector)
	case err != nil:
		t.Problem = "data is not hex"
	case matching == MatchSHA256 && len(raw) != sha256.Size, matching == MatchSHA512 && len(raw) != sha512.Size:
		t.Problem = fmt.Sprintf("digest of %d bytes does not fit matching type %d", len(raw), matching)
	case matching > MatchSHA512:
		t.Problem = fmt.Sprintf("unknown matching type %d", matching)
	case matching == MatchFull && len(raw) == 0:
		t.Problem = "empty data"
	default:
		t.Usable = true
	}
	return t
}

// Association computes the data a TLSA record with this selector and
// matching type would hold for cert.
func Association(cert *x509.Certificate, selector, matching uint8) ([]byte, error) {
	var in []byte
	switch selector {
	case SelectorCert:
		in = cert.Raw
	case SelectorSPKI:
		in = cert.RawSubjectPublicKeyInfo
	default:
		return nil, fmt.Errorf("unknown selector %d", selector)
	}
	switch matching {
	case MatchFull:
		return in, nil
	case MatchSHA256:
		s := sha256.Sum256(in)
		return s[:], nil
	case MatchSHA512:
		s := sha512.Sum512(in)
		return s[:], nil
	}
	return nil, fmt.Errorf("unknown matching type %d", matching)
}

func matches(t TLSA, cert *x509.Certificate) bool {
	want, err := hex.DecodeString(t.Data)
	if err != nil {
		return false
	}
	got, err := Association(cert, t.Selector, t.MatchingType)
	return err == nil && bytes.Equal(got, want)
}

// VerifyDANE checks the usable records against the chain as served (leaf
// first), as RFC 7672 §3.1 and RFC 7671 §5 say: DANE-EE(3) matches the
// leaf and ignores names and dates; DANE-TA(2) matches a certificate the
// server sent, then the leaf must chain to it and be valid for one of the
// names (the TLSA base domain, the MX host name). It marks each record's
// Matched and returns whether any usable record authenticated the server.
func VerifyDANE(records []TLSA, chain []*x509.Certificate, names []string, now time.Time) (bool, string) {
	if len(chain) == 0 {
		return false, "no certificate served"
	}
	leaf := chain[0]
	ok := false
	var why []string
	for i := range records {
		t := &records[i]
		if !t.Usable {
			continue
		}
		switch t.Usage {
		case UsageDANEEE:
			if matches(*t, leaf) {
				t.Matched, ok = true, true
			} else {
				why = append(why, fmt.Sprintf("%d %d %d does not match the leaf (%s)", t.Usage, t.Selector, t.MatchingType, leafDigest(leaf, t.Selector, t.MatchingType)))
			}
		case UsageDANETA:
			ta := -1
			for j, c := range chain {
				if matches(*t, c) {
					ta = j
					break
				}
			}
			if ta < 0 {
				why = append(why, fmt.Sprintf("%d %d %d matches no certificate the server sent", t.Usage, t.Selector, t.MatchingType))
				continue
			}
			if err := verifyToAnchor(chain, ta, names, now); err != nil {
				why = append(why, fmt.Sprintf("%d %d %d matches certificate %d, but %v", t.Usage, t.Selector, t.MatchingType, ta, err))
				continue
			}
			t.Matched, ok = true, true
		}
	}
	return ok, strings.Join(why, "; ")
}

// verifyToAnchor checks that the leaf chains to chain[ta] and is valid for
// one of names. With selector 1 only the key is pinned, so the anchor's
// own certificate fields (dates, constraints) are taken as sent.
func verifyToAnchor(chain []*x509.Certificate, ta int, names []string, now time.Time) error {
	leaf := chain[0]
	if ta == 0 {
		return fmt.Errorf("the trust anchor is the leaf itself")
	}
	roots := x509.NewCertPool()
	roots.AddCert(chain[ta])
	inter := x509.NewCertPool()
	for _, c := range chain[1:ta] {
		inter.AddCert(c)
	}
	var lastErr error
	for _, n := range names {
		n = strings.TrimSuffix(n, ".")
		_, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: n, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err == nil {
			return nil
		}
		lastErr = err
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("no name to verify")
	}
	return lastErr
}

func leafDigest(c *x509.Certificate, selector, matching uint8) string {
	d, err := Association(c, selector, matching)
	if err != nil {
		return err.Error()
	}
	s := hex.EncodeToString(d)
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return "the server's is " + s
}
