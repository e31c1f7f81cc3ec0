package check

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"maps"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	"golang.org/x/crypto/ocsp"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// sctList is the DER OCTET STRING of a SignedCertificateTimestampList with
// n stand-in entries: counting does not look inside an SCT.
func sctList(t *testing.T, n int) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for i := 0; i < n; i++ {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte{0, byte(i), 1, 2, 3}) })
		}
	})
	der, err := asn1.Marshal(b.BytesOrPanic())
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func TestSessionFacts(t *testing.T) {
	session := func(o *Options) { o.Depth = Session }
	t.Run("must-staple and SCTs from three sources", func(t *testing.T) {
		features, _ := asn1.Marshal([]int{tlsFeatureStatusRequest})
		pki := newPKI(t, certs.LeafOptions{Modify: func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions,
				pkix.Extension{Id: oidTLSFeature, Value: features},
				pkix.Extension{Id: oidSCTList, Value: sctList(t, 2)})
		}})
		now := time.Now()
		staple, err := ocsp.CreateResponse(pki.ca.Cert, pki.ca.Cert, ocsp.Response{
			Status: ocsp.Good, SerialNumber: pki.leaf.Cert.SerialNumber, ThisUpdate: now.Add(-time.Hour), NextUpdate: now.Add(time.Hour),
			ExtraExtensions: []pkix.Extension{{Id: oidOCSPSCTList, Value: sctList(t, 1)}},
		}, pki.ca.Key)
		if err != nil {
			t.Fatal(err)
		}
		cfg := pki.server()
		cfg.Certificates[0].OCSPStaple = staple
		cfg.Certificates[0].SignedCertificateTimestamps = [][]byte{{1}, {2}, {3}}
		addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: cfg})
		r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool(), session)
		f := r.TLS.Facts
		if f == nil || f.MustStaple == nil || !*f.MustStaple {
			t.Fatalf("facts %+v: must-staple not seen", f)
		}
		if want := map[string]int{"certificate": 2, "ocsp": 1, "tls-extension": 3}; !maps.Equal(f.SCTs, want) {
			t.Errorf("SCTs %v, want %v", f.SCTs, want)
		}
		if !r.Certificate.OCSPStapled {
			t.Error("the staple was not seen")
		}
	})
	t.Run("none", func(t *testing.T) {
		// A TLS feature extension without status_request is not must-staple.
		features, _ := asn1.Marshal([]int{17})
		pki := newPKI(t, certs.LeafOptions{Modify: func(c *x509.Certificate) {
			c.ExtraExtensions = append(c.ExtraExtensions, pkix.Extension{Id: oidTLSFeature, Value: features})
		}})
		addr := correctServer(t, starttls.SMTP, starttls.ServerConfig{TLSConfig: pki.server()})
		r := checkAddr(t, starttls.SMTP, addr, pki.ca.Pool(), session)
		f := r.TLS.Facts
		if f == nil || f.MustStaple == nil || *f.MustStaple {
			t.Fatalf("facts %+v: must-staple wrongly seen or not measured", f)
		}
		if want := map[string]int{"certificate": 0, "ocsp": 0, "tls-extension": 0}; !maps.Equal(f.SCTs, want) {
			t.Errorf("SCTs %v, want %v", f.SCTs, want)
		}
	})
}

func TestCountSCTsMalformed(t *testing.T) {
	for name, der := range map[string][]byte{
		"not DER":        {0xFF, 0x01},
		"trailing bytes": append(sctList(t, 1), 0),
		"list overruns":  {0x04, 0x04, 0x00, 0x09, 0x00, 0x01},
		"empty SCT":      {0x04, 0x04, 0x00, 0x02, 0x00, 0x00},
	} {
		if n := countSCTs(der); n != 0 {
			t.Errorf("%s: %d SCTs", name, n)
		}
	}
	if n := countSCTs(sctList(t, 4)); n != 4 {
		t.Errorf("4 SCTs counted as %d", n)
	}
}
