package proxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// CertStore serves a certificate loaded from files and swaps it
// atomically on Reload: handshakes in progress keep the old one, new ones
// get the new one, and no connection is dropped.
type CertStore struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	stamp             atomic.Value // fileStamp of the loaded files
}

type fileStamp struct {
	certMod, keyMod   time.Time
	certSize, keySize int64
}

// LoadCertStore loads a PEM certificate chain and key.
func LoadCertStore(certFile, keyFile string) (*CertStore, error) {
	s := &CertStore{certFile: certFile, keyFile: keyFile}
	if err := s.Reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// Reload reads the files again; on error the current certificate stays.
func (s *CertStore) Reload() error {
	st, _ := s.statFiles()
	cert, err := tls.LoadX509KeyPair(s.certFile, s.keyFile)
	if err != nil {
		return fmt.Errorf("certificate %s, key %s: %w", s.certFile, s.keyFile, err)
	}
	if cert.Leaf == nil && len(cert.Certificate) > 0 {
		cert.Leaf, _ = x509.ParseCertificate(cert.Certificate[0])
	}
	s.cur.Store(&cert)
	s.stamp.Store(st)
	return nil
}

// Current returns the certificate in use.
func (s *CertStore) Current() *tls.Certificate { return s.cur.Load() }

// GetCertificate is for tls.Config.GetCertificate.
func (s *CertStore) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := s.cur.Load()
	if c == nil {
		return nil, errors.New("no certificate loaded")
	}
	return c, nil
}

func (s *CertStore) statFiles() (fileStamp, error) {
	c, err := os.Stat(s.certFile)
	if err != nil {
		return fileStamp{}, err
	}
	k, err := os.Stat(s.keyFile)
	if err != nil {
		return fileStamp{}, err
	}
	return fileStamp{certMod: c.ModTime(), keyMod: k.ModTime(), certSize: c.Size(), keySize: k.Size()}, nil
}

// Changed reports whether the files differ (time or size) from the loaded ones.
func (s *CertStore) Changed() bool {
	st, err := s.statFiles()
	if err != nil {
		return false // mid-replacement: try again later
	}
	old, _ := s.stamp.Load().(fileStamp)
	return st != old
}

// Watch polls the files every interval until ctx ends and reloads them
// when they change; onReload is told of each attempt (err nil: reloaded).
func (s *CertStore) Watch(ctx context.Context, interval time.Duration, onReload func(error)) {
	if interval <= 0 {
		interval = 2 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.Changed() {
			continue
		}
		err := s.Reload()
		if err != nil {
			// Keep the stamp of the failed files so that a half-written pair
			// is retried once it changes again, not every tick.
			if st, serr := s.statFiles(); serr == nil {
				s.stamp.Store(st)
			}
		}
		if onReload != nil {
			onReload(err)
		}
	}
}

// Files returns the certificate and key paths.
func (s *CertStore) Files() (certFile, keyFile string) { return s.certFile, s.keyFile }

// ParsePin parses "sha256:BASE64" or "sha256:HEX" (or the digest alone),
// the SHA-256 of a certificate's SubjectPublicKeyInfo (as in HPKP and
// `openssl x509 -pubkey | openssl pkey -pubin -outform der | sha256sum`).
func ParsePin(s string) ([32]byte, error) {
	var out [32]byte
	v := strings.TrimPrefix(strings.TrimSpace(s), "sha256:")
	var b []byte
	var err error
	if len(v) == 64 {
		b, err = hex.DecodeString(v)
	} else {
		b, err = base64.StdEncoding.DecodeString(v)
	}
	if err != nil || len(b) != 32 {
		return out, fmt.Errorf("pin %q: want sha256:BASE64 or 64 hex digits of the SPKI's SHA-256", s)
	}
	copy(out[:], b)
	return out, nil
}

// SPKIPin is the pin of a certificate.
func SPKIPin(c *x509.Certificate) [32]byte { return sha256.Sum256(c.RawSubjectPublicKeyInfo) }

// pinVerifier requires one certificate of the presented or verified chain
// to match a pin, after the normal verification.
func pinVerifier(pins [][32]byte, next func(tls.ConnectionState) error) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if next != nil {
			if err := next(cs); err != nil {
				return err
			}
		}
		certs := cs.PeerCertificates
		for _, ch := range cs.VerifiedChains {
			certs = append(certs, ch...)
		}
		for _, c := range certs {
			h := SPKIPin(c)
			for _, p := range pins {
				if h == p {
					return nil
				}
			}
		}
		return errors.New("no certificate of the chain matches a configured pin")
	}
}
