package active

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/binary"
	"fmt"
	"net"

	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// gcmState protects one direction of a TLS 1.2 AES-GCM connection (RFC
// 5288): a 4-byte salt from the key block, an 8-byte explicit nonce (the
// sequence number) in front of each record.
type gcmState struct {
	aead cipher.AEAD
	salt []byte
	seq  uint64
}

func newGCM(key, salt []byte) (*gcmState, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &gcmState{aead: a, salt: salt}, nil
}

func (g *gcmState) additional(typ uint8, version uint16, n int) []byte {
	ad := binary.BigEndian.AppendUint64(nil, g.seq)
	ad = append(ad, typ, byte(version>>8), byte(version))
	return binary.BigEndian.AppendUint16(ad, uint16(n))
}

func (g *gcmState) seal(typ uint8, version uint16, plain []byte) []byte {
	explicit := binary.BigEndian.AppendUint64(nil, g.seq)
	nonce := append(append([]byte{}, g.salt...), explicit...)
	out := g.aead.Seal(explicit, nonce, plain, g.additional(typ, version, len(plain)))
	g.seq++
	return out
}

func (g *gcmState) open(rec tlsprobe.Record) ([]byte, error) {
	if len(rec.Body) < 8+g.aead.Overhead() {
		return nil, fmt.Errorf("%w: encrypted record of %d bytes", tlsprobe.ErrNotTLS, len(rec.Body))
	}
	nonce := append(append([]byte{}, g.salt...), rec.Body[:8]...)
	n := len(rec.Body) - 8 - g.aead.Overhead()
	plain, err := g.aead.Open(nil, nonce, rec.Body[8:], g.additional(rec.Type, rec.Version, n))
	if err != nil {
		return nil, fmt.Errorf("%w: record does not decrypt (bad_record_mac)", tlsprobe.ErrNotTLS)
	}
	g.seq++
	return plain, nil
}

// recordConn is the client's record layer: plaintext until each side's
// ChangeCipherSpec, AES-GCM after; handshake messages reassembled across
// records.
type recordConn struct {
	conn    net.Conn
	version uint16
	in, out *gcmState
	hsBuf   []byte // handshake bytes read but not yet consumed
	// pending holds a non-handshake record met while handshake messages
	// were wanted.
	pending *tlsprobe.Record
}

func (rc *recordConn) write(typ uint8, body []byte) error {
	if rc.out != nil {
		body = rc.out.seal(typ, rc.version, body)
	}
	_, err := rc.conn.Write(tlsprobe.Record{Type: typ, Version: rc.version, Body: body}.Marshal())
	return err
}

// read returns the next record, decrypted when the server has switched.
func (rc *recordConn) read() (tlsprobe.Record, error) {
	if p := rc.pending; p != nil {
		rc.pending = nil
		return *p, nil
	}
	rec, err := tlsprobe.ReadRecord(rc.conn)
	if err != nil {
		return rec, err
	}
	if rc.in != nil && rec.Type != tlsprobe.RecordChangeCipherSpec {
		if rec.Body, err = rc.in.open(rec); err != nil {
			return rec, err
		}
	}
	return rec, nil
}

// maxHandshakeMsg bounds a handshake message (a certificate chain fits).
const maxHandshakeMsg = 1 << 17

// readHandshake returns the next handshake message (header included). An
// alert comes back as an Alert error; another record type as ErrNotTLS.
func (rc *recordConn) readHandshake() ([]byte, error) {
	// Each record adds at least one byte or ends the loop with an error;
	// the bound guards against an endless stream of empty records.
	for i := 0; i < 64; i++ {
		msg, rest, n := wire.SplitHandshake(rc.hsBuf)
		if n > maxHandshakeMsg {
			return nil, fmt.Errorf("%w: handshake message of %d bytes", tlsprobe.ErrNotTLS, n)
		}
		if msg != nil {
			rc.hsBuf = rest
			return msg, nil
		}
		rec, err := rc.read()
		if err != nil {
			return nil, err
		}
		switch rec.Type {
		case tlsprobe.RecordHandshake:
			rc.hsBuf = append(rc.hsBuf, rec.Body...)
		case tlsprobe.RecordAlert:
			a, err := tlsprobe.ParseAlert(rec.Body)
			if err != nil {
				return nil, err
			}
			return nil, a
		case tlsprobe.RecordChangeCipherSpec:
			if len(rc.hsBuf) > 0 || len(rec.Body) != 1 || rec.Body[0] != 1 {
				return nil, fmt.Errorf("%w: misplaced or malformed ChangeCipherSpec", tlsprobe.ErrNotTLS)
			}
			return nil, errCCS
		default:
			if len(rc.hsBuf) > 0 {
				return nil, fmt.Errorf("%w: record type %d inside a handshake message", tlsprobe.ErrNotTLS, rec.Type)
			}
			rc.pending = &rec
			return nil, fmt.Errorf("%w: record type %d where a handshake message was due", tlsprobe.ErrNotTLS, rec.Type)
		}
	}
	return nil, fmt.Errorf("%w: too many records without a complete handshake message", tlsprobe.ErrNotTLS)
}
