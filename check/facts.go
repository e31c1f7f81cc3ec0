package check

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/ocsp"
)

// Object identifiers of the certificate facts.
var (
	// oidTLSFeature is the TLS feature extension (RFC 7633 §6).
	oidTLSFeature = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 24}
	// oidSCTList is the embedded SCT list in a certificate (RFC 6962 §3.3).
	oidSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 2}
	// oidOCSPSCTList is the SCT list in an OCSP single response (RFC 6962 §3.3).
	oidOCSPSCTList = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 11129, 2, 4, 5}
)

// tlsFeatureStatusRequest is status_request's number in a TLS feature list.
const tlsFeatureStatusRequest = 5

// withFacts edits the report's TLS facts under the run's lock, creating
// them on first use: several probes fill them concurrently.
func (c *run) withFacts(f func(*TLSFacts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.r.TLS.Facts == nil {
		c.r.TLS.Facts = &TLSFacts{}
	}
	f(c.r.TLS.Facts)
}

// sessionFacts records what the main session shows without a verdict:
// must-staple and where the signed certificate timestamps came from.
func (c *run) sessionFacts(st tls.ConnectionState) {
	if len(st.PeerCertificates) == 0 {
		return
	}
	leaf := st.PeerCertificates[0]
	must := mustStaple(leaf)
	scts := map[string]int{
		"certificate":   certificateSCTs(leaf),
		"ocsp":          ocspSCTs(st.OCSPResponse),
		"tls-extension": len(st.SignedCertificateTimestamps),
	}
	c.withFacts(func(f *TLSFacts) {
		f.MustStaple = &must
		f.SCTs = scts
	})
}

// mustStaple reports whether the certificate's TLS feature extension lists
// status_request (RFC 7633 §4.2.3).
func mustStaple(cert *x509.Certificate) bool {
	for _, e := range cert.Extensions {
		if !e.Id.Equal(oidTLSFeature) {
			continue
		}
		var features []int
		if rest, err := asn1.Unmarshal(e.Value, &features); err != nil || len(rest) > 0 {
			return false
		}
		for _, f := range features {
			if f == tlsFeatureStatusRequest {
				return true
			}
		}
	}
	return false
}

// certificateSCTs counts the SCTs embedded in the certificate.
func certificateSCTs(cert *x509.Certificate) int {
	for _, e := range cert.Extensions {
		if e.Id.Equal(oidSCTList) {
			return countSCTs(e.Value)
		}
	}
	return 0
}

// ocspSCTs counts the SCTs in a stapled OCSP response's single extensions.
// The response is parsed without its issuer: counting does not need the
// signature, and verifying the staple is not this fact's business.
func ocspSCTs(staple []byte) int {
	if len(staple) == 0 {
		return 0
	}
	resp, err := ocsp.ParseResponse(staple, nil)
	if err != nil {
		return 0
	}
	for _, e := range resp.Extensions {
		if e.Id.Equal(oidOCSPSCTList) {
			return countSCTs(e.Value)
		}
	}
	return 0
}

// countSCTs counts the entries of a DER OCTET STRING holding a TLS
// SignedCertificateTimestampList (RFC 6962 §3.3); malformed counts as none.
func countSCTs(der []byte) int {
	var list []byte
	if rest, err := asn1.Unmarshal(der, &list); err != nil || len(rest) > 0 {
		return 0
	}
	s := cryptobyte.String(list)
	var scts cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&scts) || !s.Empty() {
		return 0
	}
	n := 0
	for !scts.Empty() {
		var sct cryptobyte.String
		if !scts.ReadUint16LengthPrefixed(&sct) || sct.Empty() {
			return 0
		}
		n++
	}
	return n
}
