// Package tlsprobe sends hand-built ClientHellos and reads the server's
// ServerHello or alert, to learn which protocol versions, cipher suites and
// key-exchange groups a server accepts, beyond what crypto/tls can offer
// (SSLv3, RSA key exchange, 3DES, RC4, CAMELLIA, ARIA, DHE ...). No
// handshake is ever completed: each probe stops at the server's first answer
// (the client that does complete them is in tlsprobe/active).
package tlsprobe

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// Version is a protocol version number as sent on the wire.
type Version uint16

// Versions the prober knows.
const (
	SSL30 Version = 0x0300
	TLS10 Version = 0x0301
	TLS11 Version = 0x0302
	TLS12 Version = 0x0303
	TLS13 Version = 0x0304
)

// AllVersions in ascending order.
var AllVersions = []Version{SSL30, TLS10, TLS11, TLS12, TLS13}

func (v Version) String() string {
	switch v {
	case SSL30:
		return "SSLv3"
	case TLS10:
		return "TLS 1.0"
	case TLS11:
		return "TLS 1.1"
	case TLS12:
		return "TLS 1.2"
	case TLS13:
		return "TLS 1.3"
	}
	return fmt.Sprintf("0x%04X", uint16(v))
}

// Key is the version's name in reports: sslv3, tls1.0 ... tls1.3.
func (v Version) Key() string {
	switch v {
	case SSL30:
		return "sslv3"
	case TLS10:
		return "tls1.0"
	case TLS11:
		return "tls1.1"
	case TLS12:
		return "tls1.2"
	case TLS13:
		return "tls1.3"
	}
	return fmt.Sprintf("0x%04x", uint16(v))
}

// ClientHello is what one probe offers.
type ClientHello struct {
	Version    Version // the highest (and, for 1.3, only) version offered
	Suites     []uint16
	Groups     []uint16
	ServerName string // SNI; empty for none
	// KeyShareX25519 sends an x25519 key share in a TLS 1.3 hello; without
	// it the server must answer with a HelloRetryRequest naming its group.
	KeyShareX25519 bool
	// Compression lists methods offered before null (0), which is always
	// last; nil offers null alone.
	Compression []uint8
	// Extensions are sent after the built-in ones, as given (not in SSLv3
	// hellos, which carry no extensions).
	Extensions []Extension
}

// Extension is one hello extension, its body unparsed.
type Extension struct {
	Type uint16
	Data []byte
}

// Alert is a TLS alert received instead of a ServerHello.
type Alert struct {
	Level, Description uint8
}

func (a Alert) Error() string { return fmt.Sprintf("TLS alert %d (level %d)", a.Description, a.Level) }

// ServerHello is the part of the server's answer a probe needs.
type ServerHello struct {
	Version    Version // negotiated version (supported_versions for 1.3)
	Suite      uint16
	Group      uint16 // TLS 1.3 key_share group (or the HRR's selected group)
	HelloRetry bool
	// Compression is the chosen compression method (0 = null).
	Compression uint8
	// Extensions are the ServerHello's extensions in the order sent.
	Extensions []Extension
}

// Extension returns the body of the extension typ and whether it was sent.
func (sh *ServerHello) Extension(typ uint16) ([]byte, bool) {
	for _, e := range sh.Extensions {
		if e.Type == typ {
			return e.Data, true
		}
	}
	return nil, false
}

// Errors that are answers, not failures: the server declined the offer.
// They are the values tlsprobe/active returns too.
var (
	// ErrDeclined: the server answered with an alert or hung up right after
	// the ClientHello — the offer is not accepted.
	ErrDeclined = wire.ErrDeclined
	// ErrNotTLS: the server's answer is not a TLS record.
	ErrNotTLS = wire.ErrNotTLS
)

// helloRetryRandom marks a HelloRetryRequest (RFC 8446 §4.1.3).
var helloRetryRandom = sha256.Sum256([]byte("HelloRetryRequest"))

// Marshal builds the ClientHello record.
func (ch ClientHello) Marshal() []byte {
	random := make([]byte, 32)
	_, _ = rand.Read(random)
	legacy := ch.Version
	if legacy > TLS12 {
		legacy = TLS12
	}
	var b cryptobyte.Builder
	b.AddUint8(1) // client_hello
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(uint16(legacy))
		b.AddBytes(random)
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) {
			if ch.Version == TLS13 {
				sid := make([]byte, 32)
				_, _ = rand.Read(sid)
				b.AddBytes(sid) // middlebox compatibility mode
			}
		})
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range ch.Suites {
				b.AddUint16(s)
			}
			if ch.Version < TLS13 {
				b.AddUint16(0x00FF) // TLS_EMPTY_RENEGOTIATION_INFO_SCSV
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(ch.Compression); b.AddUint8(0) })
		if ch.Version == SSL30 {
			return // SSLv3 servers may choke on extensions
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { ch.extensions(b) })
	})
	msg, _ := b.Bytes()
	recVersion := uint16(TLS10)
	if ch.Version == SSL30 {
		recVersion = uint16(SSL30)
	}
	rec := []byte{22, byte(recVersion >> 8), byte(recVersion), byte(len(msg) >> 8), byte(len(msg))}
	return append(rec, msg...)
}

func (ch ClientHello) extensions(b *cryptobyte.Builder) {
	ext := func(typ uint16, body func(*cryptobyte.Builder)) {
		b.AddUint16(typ)
		b.AddUint16LengthPrefixed(body)
	}
	if ch.ServerName != "" {
		ext(0, func(b *cryptobyte.Builder) {
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
				b.AddUint8(0)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(ch.ServerName)) })
			})
		})
	}
	ext(10, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, g := range ch.Groups {
				b.AddUint16(g)
			}
		})
	})
	ext(11, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
	})
	ext(13, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range wire.SigAlgs {
				b.AddUint16(s)
			}
		})
	})
	ext(23, func(*cryptobyte.Builder) {}) // extended_master_secret
	defer func() {
		for _, e := range ch.Extensions {
			ext(e.Type, func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
		}
	}()
	if ch.Version != TLS13 {
		return
	}
	ext(43, func(b *cryptobyte.Builder) {
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint16(uint16(TLS13)) })
	})
	ext(45, func(b *cryptobyte.Builder) { // psk_key_exchange_modes: psk_dhe_ke
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(1) })
	})
	ext(51, func(b *cryptobyte.Builder) {
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			if !ch.KeyShareX25519 {
				return
			}
			// Any 32 bytes are an x25519 public key; the handshake is never finished.
			key := make([]byte, 32)
			_, _ = rand.Read(key)
			b.AddUint16(0x001D)
			b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(key) })
		})
	})
}

// Hello sends ch on conn and reads the server's first answer. An alert or
// an immediate close gives an error matching ErrDeclined.
func Hello(ctx context.Context, conn net.Conn, ch ClientHello) (*ServerHello, error) {
	stop := wire.Bind(ctx, conn)
	defer stop()
	if _, err := conn.Write(ch.Marshal()); err != nil {
		return nil, wire.DeclinedIfReset(err)
	}
	return ReadServerHello(conn)
}

// ReadServerHello reads one record and parses the ServerHello or alert in it.
func ReadServerHello(r io.Reader) (*ServerHello, error) {
	typ, body, err := readRecord(r)
	if err != nil {
		return nil, err
	}
	return ParseRecord(typ, body)
}

// HelloKeyExchange is Hello for TLS 1.2 ECDHE offers: it reads on past the
// ServerHello to the ServerKeyExchange and returns the named curve the
// server chose there (0 if the flight has none, e.g. RSA key exchange).
// Only this proves which group a TLS 1.2 server used: the ServerHello
// does not say.
func HelloKeyExchange(ctx context.Context, conn net.Conn, ch ClientHello) (*ServerHello, uint16, error) {
	stop := wire.Bind(ctx, conn)
	defer stop()
	if _, err := conn.Write(ch.Marshal()); err != nil {
		return nil, 0, wire.DeclinedIfReset(err)
	}
	fr := &flightReader{r: conn}
	var sh *ServerHello
	for {
		msg, err := fr.next()
		if err != nil {
			return sh, 0, err
		}
		switch msg[0] {
		case 2: // ServerHello
			if sh, err = ParseRecord(22, msg); err != nil {
				return nil, 0, err
			}
		case 12: // ServerKeyExchange: ECParameters, curve_type 3 = named_curve
			if sh == nil || len(msg) < 7 || msg[4] != 3 {
				return sh, 0, nil
			}
			return sh, uint16(msg[5])<<8 | uint16(msg[6]), nil
		case 14: // ServerHelloDone: no key exchange message
			return sh, 0, nil
		}
	}
}

// ParseRecord interprets one record's content.
func ParseRecord(typ byte, body []byte) (*ServerHello, error) {
	switch typ {
	case 21:
		if len(body) < 2 {
			return nil, fmt.Errorf("%w: short alert", ErrNotTLS)
		}
		return nil, fmt.Errorf("%w: %w", ErrDeclined, Alert{Level: body[0], Description: body[1]})
	case 22:
	default:
		return nil, fmt.Errorf("%w: record type %d where a handshake was due", ErrNotTLS, typ)
	}
	s := cryptobyte.String(body)
	var msgType uint8
	var msg cryptobyte.String
	if !s.ReadUint8(&msgType) || !s.ReadUint24LengthPrefixed(&msg) {
		return nil, fmt.Errorf("%w: truncated handshake message", ErrNotTLS)
	}
	if msgType != 2 {
		return nil, fmt.Errorf("%w: handshake message %d where a ServerHello was due", ErrNotTLS, msgType)
	}
	var version uint16
	var random, sid []byte
	sh := &ServerHello{}
	if !msg.ReadUint16(&version) || !msg.ReadBytes(&random, 32) || !msg.ReadUint8LengthPrefixed((*cryptobyte.String)(&sid)) ||
		!msg.ReadUint16(&sh.Suite) || !msg.ReadUint8(&sh.Compression) {
		return nil, fmt.Errorf("%w: truncated ServerHello", ErrNotTLS)
	}
	sh.Version = Version(version)
	sh.HelloRetry = bytes.Equal(random, helloRetryRandom[:])
	if msg.Empty() {
		return sh, nil
	}
	var exts cryptobyte.String
	if !msg.ReadUint16LengthPrefixed(&exts) {
		return nil, fmt.Errorf("%w: bad ServerHello extensions", ErrNotTLS)
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return nil, fmt.Errorf("%w: bad ServerHello extension", ErrNotTLS)
		}
		sh.Extensions = append(sh.Extensions, Extension{Type: typ, Data: append([]byte(nil), data...)})
		switch typ {
		case 43:
			var v uint16
			if !data.ReadUint16(&v) {
				return nil, fmt.Errorf("%w: bad supported_versions", ErrNotTLS)
			}
			sh.Version = Version(v)
		case 51:
			if !data.ReadUint16(&sh.Group) {
				return nil, fmt.Errorf("%w: bad key_share", ErrNotTLS)
			}
		}
	}
	return sh, nil
}
