package mail

import (
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// Next is the certificate (or only the key) an MX host is about to
// deploy, as read from the PEM file the server will use.
type Next struct {
	// Chain is the leaf then the certificates that will be sent with it;
	// empty when only a key was given.
	Chain []*x509.Certificate
	// SPKI is the DER SubjectPublicKeyInfo of the next key.
	SPKI []byte
}

// ParseNextCert reads a PEM file of the next certificate chain, leaf
// first, as the server will send it.
func ParseNextCert(b []byte) (*Next, error) {
	n := &Next{}
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue // a key in the same file is fine
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(n.Chain)+1, err)
		}
		n.Chain = append(n.Chain, c)
	}
	if len(n.Chain) == 0 {
		return nil, errors.New("no PEM CERTIFICATE block")
	}
	n.SPKI = n.Chain[0].RawSubjectPublicKeyInfo
	return n, nil
}

// ParseNextKey reads the next key from PEM: a public key, a private key
// (PKCS #8, PKCS #1 RSA, SEC 1 EC) or a certificate (its key is used and
// the rest of it ignored).
func ParseNextKey(b []byte) (*Next, error) {
	for len(b) > 0 {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		var pub any
		var err error
		switch blk.Type {
		case "PUBLIC KEY":
			pub, err = x509.ParsePKIXPublicKey(blk.Bytes)
		case "PRIVATE KEY":
			var k any
			if k, err = x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
				pub = publicOf(k)
			}
		case "RSA PRIVATE KEY":
			k, e := x509.ParsePKCS1PrivateKey(blk.Bytes)
			if err = e; err == nil {
				pub = k.Public()
			}
		case "EC PRIVATE KEY":
			k, e := x509.ParseECPrivateKey(blk.Bytes)
			if err = e; err == nil {
				pub = k.Public()
			}
		case "CERTIFICATE":
			c, e := x509.ParseCertificate(blk.Bytes)
			if err = e; err == nil {
				return &Next{SPKI: c.RawSubjectPublicKeyInfo}, nil
			}
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", blk.Type, err)
		}
		if pub == nil {
			return nil, fmt.Errorf("%s: unsupported key type", blk.Type)
		}
		spki, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return nil, err
		}
		return &Next{SPKI: spki}, nil
	}
	return nil, errors.New("no PEM key or certificate")
}

func publicOf(k any) any {
	if s, ok := k.(crypto.Signer); ok {
		return s.Public()
	}
	return nil
}

// TLSA311 is the DANE-EE record RFC 7671 §5.1 and RFC 7672 §3.1.1
// recommend for a key: 3 1 1 and the SHA-256 of the SubjectPublicKeyInfo.
func (n *Next) TLSA311() TLSA {
	s := sha256.Sum256(n.SPKI)
	return NewTLSA(UsageDANEEE, SelectorSPKI, MatchSHA256, hex.EncodeToString(s[:]))
}

// Match states of one record against a certificate.
const (
	MatchYes     = "yes"
	MatchNo      = "no"
	MatchUnknown = "unknown" // not decidable from what was given
)

// RolloverRecord is one published TLSA record judged against the current
// and the next certificate.
type RolloverRecord struct {
	TLSA
	// Current is whether it matches the chain served now ("unknown" when
	// the chain could not be fetched).
	Current string `json:"current"`
	// Next is whether it will match the next certificate.
	Next string `json:"next"`
	Note string `json:"note,omitempty"`
}

// HostPlan is the rollover plan of one TLSA RRset.
type HostPlan struct {
	Records []RolloverRecord `json:"records"`
	// Ready: a usable record will match the next certificate, so it can
	// be deployed now as far as DANE is concerned.
	Ready bool `json:"ready"`
	// Undecided: not ready, and a record could not be judged from a key
	// alone (DANE-TA).
	Undecided bool `json:"undecided,omitempty"`
	// Publish are the records to add before the next certificate goes
	// live; Remove are the records to take out once it is live (they
	// match only the current certificate, or nothing at all).
	Publish []string `json:"publish"`
	Remove  []string `json:"remove"`
	Steps   []string `json:"steps"`
}

// PlanRollover judges records against the chain served now (nil when
// unknown) and the next certificate or key, and says what to publish
// when. names are the names a DANE-TA chain must be valid for (the TLSA
// base domain, the MX name); ttl is the RRset's TTL in seconds (0 unknown).
func PlanRollover(records []TLSA, current []*x509.Certificate, next *Next, names []string, ttl uint32, now time.Time) *HostPlan {
	p := &HostPlan{Records: []RolloverRecord{}, Publish: []string{}, Remove: []string{}, Steps: []string{}}
	var have []TLSA // usable records, for the publish suggestion
	for _, t := range records {
		rr := RolloverRecord{TLSA: t, Current: MatchUnknown, Next: MatchNo}
		if !t.Usable {
			rr.Next, rr.Current = MatchNo, MatchNo
			rr.Note = "not usable for SMTP: " + t.Problem
			p.Records = append(p.Records, rr)
			continue
		}
		have = append(have, t)
		if current != nil {
			rr.Current = yesNo(recordMatches(t, current, names, now) == nil)
		}
		rr.Next, rr.Note = nextMatches(t, next, names, now)
		switch rr.Next {
		case MatchYes:
			p.Ready = true
		case MatchUnknown:
			p.Undecided = true
		}
		p.Records = append(p.Records, rr)
	}
	wait := "wait until caches hold the new RRset (at least the TTL"
	if ttl > 0 {
		wait += fmt.Sprintf(", %d s", ttl)
	}
	wait += ", better twice that)"
	if p.Ready {
		p.Undecided = false
	} else {
		for _, t := range suggest(have, next) {
			p.Publish = append(p.Publish, t.String())
		}
		p.Steps = append(p.Steps, "publish "+joinQuoted(p.Publish)+" now, next to the current records", wait)
	}
	for _, r := range p.Records {
		// A record that will not match the next certificate goes, once it
		// is live; one that matches nothing now can go at once.
		if r.Next == MatchYes || r.Next == MatchUnknown {
			continue
		}
		p.Remove = append(p.Remove, r.TLSA.String())
	}
	switch {
	case len(p.Remove) > 0:
		p.Steps = append(p.Steps, "deploy the next certificate; keep the old records until it is live on every address",
			"then remove "+joinQuoted(p.Remove))
	case p.Ready:
		p.Steps = append(p.Steps, "deploy the next certificate: a published record already matches it")
	default:
		p.Steps = append(p.Steps, "deploy the next certificate")
	}
	return p
}

func yesNo(b bool) string {
	if b {
		return MatchYes
	}
	return MatchNo
}

// recordMatches applies one usable record to a served chain as VerifyDANE
// does.
func recordMatches(t TLSA, chain []*x509.Certificate, names []string, now time.Time) error {
	one := []TLSA{t}
	if ok, why := VerifyDANE(one, chain, names, now); !ok {
		return errors.New(why)
	}
	return nil
}

// nextMatches says whether t will match next, and why not or why it
// cannot tell.
func nextMatches(t TLSA, next *Next, names []string, now time.Time) (string, string) {
	if len(next.Chain) > 0 {
		if err := recordMatches(t, next.Chain, names, now); err != nil {
			if t.Usage == UsageDANEEE {
				d, _ := Association(next.Chain[0], t.Selector, t.MatchingType)
				return MatchNo, fmt.Sprintf("the next certificate's %d %d %d is %s", t.Usage, t.Selector, t.MatchingType, shortHex(d))
			}
			if t.Usage == UsageDANETA && len(next.Chain) == 1 {
				return MatchNo, "the next PEM file has no issuer certificate: a DANE-TA record matches only a certificate the server sends"
			}
			return MatchNo, err.Error()
		}
		return MatchYes, ""
	}
	// Only the key is known.
	switch {
	case t.Usage == UsageDANEEE && t.Selector == SelectorSPKI:
		want, _ := hex.DecodeString(t.Data)
		got, err := digest(next.SPKI, t.MatchingType)
		return yesNo(err == nil && string(got) == string(want)), ""
	case t.Usage == UsageDANEEE:
		return MatchNo, "3 0 x pins the whole certificate: no new certificate matches it (3 1 1 survives renewals with the same key)"
	default:
		return MatchUnknown, "DANE-TA depends on the issuer: give the next certificate chain (--next-cert) to decide"
	}
}

func digest(in []byte, matching uint8) ([]byte, error) {
	switch matching {
	case MatchFull:
		return in, nil
	case MatchSHA256:
		s := sha256.Sum256(in)
		return s[:], nil
	}
	c := &x509.Certificate{RawSubjectPublicKeyInfo: in}
	return Association(c, SelectorSPKI, matching)
}

// suggest is what to publish for next: 3 1 1 of its key always (the
// recommended form), and for a host that uses DANE-TA, the same
// parameters for the top certificate of the next chain.
func suggest(have []TLSA, next *Next) []TLSA {
	out := []TLSA{next.TLSA311()}
	if len(next.Chain) < 2 {
		return out
	}
	top := next.Chain[len(next.Chain)-1]
	seen := map[[2]uint8]bool{}
	for _, t := range have {
		k := [2]uint8{t.Selector, t.MatchingType}
		if t.Usage != UsageDANETA || seen[k] {
			continue
		}
		seen[k] = true
		if d, err := Association(top, t.Selector, t.MatchingType); err == nil {
			out = append(out, NewTLSA(UsageDANETA, t.Selector, t.MatchingType, hex.EncodeToString(d)))
		}
	}
	return out
}

func joinQuoted(recs []string) string {
	s := ""
	for i, r := range recs {
		if i > 0 {
			s += " and "
		}
		s += `"` + r + `"`
	}
	return s
}

func shortHex(d []byte) string {
	s := hex.EncodeToString(d)
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return s
}
