// Package tlsfake is a fake TLS server for tests of the active
// vulnerability probes: it speaks just enough TLS (ServerHello, an RSA
// certificate, ServerHelloDone) to reach the flaw under test and has each
// flaw switchable, so that one fake gives the positive and the negative.
// Nobody packages a Heartbleed, CCS-injection or ROBOT-vulnerable server;
// this is the stand-in. It is test support, not a TLS implementation.
package tlsfake

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/active"
)

// Flaw selects the bug the fake reproduces.
type Flaw int

// The flaws.
const (
	// Heartbleed: answers a heartbeat request with payload_length bytes,
	// whatever was sent (when vulnerable); drops such requests (when not).
	Heartbleed Flaw = iota
	// CCSInjection: takes a ChangeCipherSpec before the key exchange and
	// fails to decrypt what follows (when vulnerable); rejects it with
	// unexpected_message (when not).
	CCSInjection
	// ROBOT: answers a ClientKeyExchange whose PKCS#1 padding is wrong with
	// an immediate decrypt_error, a correct one with bad_record_mac after
	// the Finished (when vulnerable); bad_record_mac for all (when not).
	ROBOT
	// ROBOTTransient is ROBOT for the first five connections only, then
	// fixed: answers that do not repeat, which must give no verdict.
	ROBOTTransient
)

// Secret is the "memory" a Heartbleed fake leaks past the request's payload.
const Secret = "-----BEGIN PRIVATE KEY----- fake server memory "

// Server is a running fake.
type Server struct {
	Addr       string
	flaw       Flaw
	vulnerable bool
	leaf       *certs.Leaf
	key        *rsa.PrivateKey
	conns      atomic.Int64
}

// Start runs a fake on a loopback port until the test ends.
func Start(t testing.TB, flaw Flaw, vulnerable bool) *Server {
	t.Helper()
	ca, err := certs.NewCA("tlsfake CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Key: certs.RSA2048})
	if err != nil {
		t.Fatal(err)
	}
	key, ok := leaf.TLS.PrivateKey.(*rsa.PrivateKey)
	if !ok {
		t.Fatalf("tlsfake: leaf key is %T", leaf.TLS.PrivateKey)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: l.Addr().String(), flaw: flaw, vulnerable: vulnerable, leaf: leaf, key: key}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_ = s.serve(c)
			})
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
	})
	return s
}

// hello is the part of a ClientHello the fake needs.
type hello struct {
	version   uint16
	suites    []uint16
	heartbeat bool
}

func parseHello(body []byte) (*hello, error) {
	s := cryptobyte.String(body)
	var typ uint8
	var msg cryptobyte.String
	if !s.ReadUint8(&typ) || typ != 1 || !s.ReadUint24LengthPrefixed(&msg) {
		return nil, errors.New("not a ClientHello")
	}
	h := &hello{}
	var random []byte
	var sid, suites, comp cryptobyte.String
	if !msg.ReadUint16(&h.version) || !msg.ReadBytes(&random, 32) || !msg.ReadUint8LengthPrefixed(&sid) ||
		!msg.ReadUint16LengthPrefixed(&suites) || !msg.ReadUint8LengthPrefixed(&comp) {
		return nil, errors.New("truncated ClientHello")
	}
	for !suites.Empty() {
		var id uint16
		if !suites.ReadUint16(&id) {
			return nil, errors.New("odd suite list")
		}
		h.suites = append(h.suites, id)
	}
	var exts cryptobyte.String
	if msg.ReadUint16LengthPrefixed(&exts) {
		for !exts.Empty() {
			var typ uint16
			var data cryptobyte.String
			if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
				return nil, errors.New("bad extensions")
			}
			h.heartbeat = h.heartbeat || typ == 15
		}
	}
	return h, nil
}

func (s *Server) alert(c net.Conn, v uint16, desc uint8) error {
	_, err := c.Write(tlsprobe.Record{Type: tlsprobe.RecordAlert, Version: v, Body: []byte{2, desc}}.Marshal())
	return err
}

func handshakeMsg(typ uint8, body []byte) []byte {
	return append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

// rsaSuites are the suites the fake picks from, all RSA key exchange.
var rsaSuites = []uint16{0x009C, 0x009D, 0x002F, 0x0035, 0x003C, 0x000A}

func (s *Server) serve(c net.Conn) error {
	rec, err := tlsprobe.ReadRecord(c)
	if err != nil || rec.Type != tlsprobe.RecordHandshake {
		return err
	}
	h, err := parseHello(rec.Body)
	if err != nil {
		return s.alert(c, 0x0301, 50)
	}
	v := min(h.version, 0x0303)
	suite := uint16(0)
	for _, want := range rsaSuites {
		for _, got := range h.suites {
			if got == want && suite == 0 {
				suite = want
			}
		}
	}
	if v < 0x0301 || suite == 0 {
		return s.alert(c, 0x0301, tlsprobe.AlertHandshakeFailure)
	}
	var b cryptobyte.Builder
	b.AddUint16(v)
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	b.AddBytes(random)
	b.AddUint8(0) // no session id
	b.AddUint16(suite)
	b.AddUint8(0)
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(0xff01)
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
		if s.flaw == Heartbleed && h.heartbeat {
			b.AddUint16(15)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(1) })
		}
	})
	flight := handshakeMsg(2, b.BytesOrPanic())
	var cb cryptobyte.Builder
	cb.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(s.leaf.Cert.Raw) })
	})
	flight = append(flight, handshakeMsg(11, cb.BytesOrPanic())...)
	flight = append(flight, handshakeMsg(14, nil)...)
	if _, err := c.Write(tlsprobe.Record{Type: tlsprobe.RecordHandshake, Version: v, Body: flight}.Marshal()); err != nil {
		return err
	}
	switch s.flaw {
	case Heartbleed:
		return s.heartbeats(c, v)
	case CCSInjection:
		return s.ccs(c, v)
	default:
		return s.robot(c, v)
	}
}

func (s *Server) heartbeats(c net.Conn, v uint16) error {
	for i := 0; i < 8; i++ {
		rec, err := tlsprobe.ReadRecord(c)
		if err != nil {
			return err
		}
		if rec.Type != tlsprobe.RecordHeartbeat {
			return s.alert(c, v, tlsprobe.AlertUnexpectedMessage)
		}
		typ, declared, payload, err := active.ParseHeartbeat(rec.Body)
		if err != nil || typ != 1 {
			return s.alert(c, v, 50)
		}
		if 3+declared+16 > len(rec.Body) {
			if !s.vulnerable {
				continue // RFC 6520 §4: silently discard
			}
			// The bug: copy declared bytes from where the payload starts.
			for len(payload) < declared {
				payload = append(payload, Secret...)
			}
			payload = payload[:declared]
		}
		resp := append([]byte{2, byte(declared >> 8), byte(declared)}, payload...)
		resp = append(resp, make([]byte, 16)...)
		for len(resp) > 0 {
			n := min(len(resp), 16384)
			if _, err := c.Write(tlsprobe.Record{Type: tlsprobe.RecordHeartbeat, Version: v, Body: resp[:n]}.Marshal()); err != nil {
				return err
			}
			resp = resp[n:]
		}
	}
	return nil
}

func (s *Server) ccs(c net.Conn, v uint16) error {
	rec, err := tlsprobe.ReadRecord(c)
	if err != nil {
		return err
	}
	if rec.Type != tlsprobe.RecordChangeCipherSpec || !s.vulnerable {
		return s.alert(c, v, tlsprobe.AlertUnexpectedMessage)
	}
	// Vulnerable: the early CCS switched to keys from an empty master
	// secret; whatever comes next does not decrypt.
	if _, err := tlsprobe.ReadRecord(c); err != nil {
		return err
	}
	return s.alert(c, v, tlsprobe.AlertBadRecordMAC)
}

func (s *Server) robot(c net.Conn, v uint16) error {
	rec, err := tlsprobe.ReadRecord(c)
	if err != nil {
		return err
	}
	body := cryptobyte.String(rec.Body)
	var typ uint8
	var msg, enc cryptobyte.String
	if rec.Type != tlsprobe.RecordHandshake || !body.ReadUint8(&typ) || typ != 16 ||
		!body.ReadUint24LengthPrefixed(&msg) || !msg.ReadUint16LengthPrefixed(&enc) {
		return s.alert(c, v, tlsprobe.AlertUnexpectedMessage)
	}
	oracle := s.vulnerable && (s.flaw == ROBOT || s.conns.Add(1) <= 5)
	if oracle && !wellPadded(s.key, enc) {
		return s.alert(c, v, tlsprobe.AlertDecryptError) // the oracle
	}
	// Correct behaviour (RFC 5246 §7.4.7.1): carry on with a random
	// premaster; the Finished then fails to decrypt.
	for i := 0; i < 2; i++ {
		if _, err := tlsprobe.ReadRecord(c); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("tlsfake: %w", err)
		}
	}
	return s.alert(c, v, tlsprobe.AlertBadRecordMAC)
}

// wellPadded decrypts with raw RSA and checks the PKCS#1 v1.5 type 2 block
// for a 48-byte premaster: variable-time on purpose, it is the oracle.
func wellPadded(key *rsa.PrivateKey, enc []byte) bool {
	if len(enc) != key.Size() {
		return false
	}
	m := new(big.Int).Exp(new(big.Int).SetBytes(enc), key.D, key.N)
	b := m.FillBytes(make([]byte, key.Size()))
	if b[0] != 0 || b[1] != 2 {
		return false
	}
	sep := bytes.IndexByte(b[2:], 0)
	return sep >= 8 && len(b)-(2+sep+1) == 48
}
