package tlsprobe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// FirstFlight is what a TLS 1.2 (or older) server sends in cleartext after
// the ClientHello, up to ServerHelloDone: enough to learn its certificate
// chain and key exchange parameters when no full handshake is possible
// (crypto/tls has no DHE, so a DHE-only server never completes with it).
type FirstFlight struct {
	Hello *ServerHello
	// Certificates are the DER certificates in the order sent (leaf first).
	Certificates [][]byte
	// KeyExchange is the ServerKeyExchange's parameters; zero when the
	// flight has none (RSA key exchange).
	KeyExchange KeyExchange
	// OCSPStapled: a CertificateStatus message came in the flight.
	OCSPStapled bool
}

// KeyExchange is the server's ephemeral key exchange parameters.
type KeyExchange struct {
	// Kind is "dhe", "ecdhe", or "" (none, or a kind not parsed, such as PSK).
	Kind string
	// P, G and Ys are the finite-field group and the server's public value
	// (big-endian), for Kind "dhe".
	P, G, Ys []byte
	// Curve is the named group, for Kind "ecdhe".
	Curve uint16
}

// DHBits is the size of the DHE prime in bits (0 when not DHE).
func (k KeyExchange) DHBits() int {
	if k.Kind != "dhe" {
		return 0
	}
	return new(big.Int).SetBytes(k.P).BitLen()
}

// Errors of a first flight that breaks the rules; they wrap ErrNotTLS.
var (
	// ErrFlightTooLarge: the flight exceeds maxFlight bytes or maxFlightRecords records.
	ErrFlightTooLarge = fmt.Errorf("%w: first flight too large", ErrNotTLS)
	// ErrBadFlight: a handshake message in the flight is malformed or out of order.
	ErrBadFlight = fmt.Errorf("%w: malformed first flight", ErrNotTLS)
)

// Handshake message types of a TLS 1.2 server's first flight (RFC 5246 §7.4).
const (
	hsServerHello       = 2
	hsCertificate       = 11
	hsServerKeyExchange = 12
	hsCertificateReq    = 13
	hsServerHelloDone   = 14
	hsCertificateStatus = 22
)

// FirstFlightHello offers v (at most TLS 1.2: a TLS 1.3 server encrypts its
// certificate) with suites, or every suite the prober knows when suites is
// empty, on a connection dial opens, and reads the server's first flight.
// The answer is bounded by o.Timeout and by maxFlight bytes.
func FirstFlightHello(ctx context.Context, dial Dialer, o Options, v Version, suites []uint16) (*FirstFlight, error) {
	o = o.WithDefaults()
	if v == 0 || v > TLS12 {
		v = TLS12
	}
	ch := ClientHello{Version: v, Suites: suites, Groups: groupIDs(), ServerName: o.ServerName}
	if len(ch.Suites) == 0 {
		ch.Suites = suiteIDs(offerOrder)
	}
	return dialed(ctx, dial, o, func(ctx context.Context, conn net.Conn) (*FirstFlight, error) {
		stop := wire.Bind(ctx, conn)
		defer stop()
		if _, err := conn.Write(ch.Marshal()); err != nil {
			return nil, wire.DeclinedIfReset(err)
		}
		return ReadFirstFlight(conn)
	})
}

// ReadFirstFlight reads records from r up to and including ServerHelloDone
// and parses the ServerHello, Certificate, CertificateStatus and
// ServerKeyExchange in them. An alert gives ErrDeclined; anything that is
// not a well-formed TLS 1.2 first flight gives an error wrapping ErrNotTLS.
func ReadFirstFlight(r io.Reader) (*FirstFlight, error) {
	ff := &FirstFlight{}
	fr := &flightReader{r: r}
	for {
		msg, err := fr.next()
		if err != nil {
			if ff.Hello != nil && errors.Is(err, ErrDeclined) && !errors.As(err, new(Alert)) {
				// A hang-up after the ServerHello is not a refusal of the offer.
				return ff, fmt.Errorf("%w: connection closed inside the first flight", ErrBadFlight)
			}
			return ff, err
		}
		done, err := ff.handle(msg)
		if err != nil || done {
			return ff, err
		}
	}
}

// handle parses one handshake message (header included); done is true at
// ServerHelloDone.
func (ff *FirstFlight) handle(msg []byte) (bool, error) {
	typ, body := msg[0], msg[4:]
	if ff.Hello == nil && typ != hsServerHello {
		return false, fmt.Errorf("%w: handshake message %d before the ServerHello", ErrBadFlight, typ)
	}
	switch typ {
	case hsServerHello:
		if ff.Hello != nil {
			return false, fmt.Errorf("%w: a second ServerHello", ErrBadFlight)
		}
		sh, err := ParseRecord(22, msg)
		if err != nil {
			return false, err
		}
		if sh.Version > TLS12 || sh.HelloRetry {
			return false, fmt.Errorf("%w: the server chose %s, whose flight is encrypted", ErrBadFlight, sh.Version)
		}
		ff.Hello = sh
	case hsCertificate:
		certs, err := parseCertificates(body)
		if err != nil {
			return false, err
		}
		ff.Certificates = certs
	case hsCertificateStatus:
		ff.OCSPStapled = true
	case hsServerKeyExchange:
		kx, err := parseServerKeyExchange(body, SuiteName(ff.Hello.Suite))
		if err != nil {
			return false, err
		}
		ff.KeyExchange = kx
	case hsCertificateReq:
	case hsServerHelloDone:
		return true, nil
	default:
		return false, fmt.Errorf("%w: handshake message %d in the server's first flight", ErrBadFlight, typ)
	}
	return false, nil
}

// parseCertificates reads a Certificate message body (RFC 5246 §7.4.2).
func parseCertificates(body []byte) ([][]byte, error) {
	s := cryptobyte.String(body)
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return nil, fmt.Errorf("%w: bad Certificate message", ErrBadFlight)
	}
	var out [][]byte
	for !list.Empty() {
		var der cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&der) || len(der) == 0 {
			return nil, fmt.Errorf("%w: bad certificate entry", ErrBadFlight)
		}
		out = append(out, append([]byte(nil), der...))
	}
	return out, nil
}

// parseServerKeyExchange reads the parameters of a ServerKeyExchange (RFC
// 5246 §7.4.3, RFC 8422 §5.4) for the suite the server chose; the
// signature that follows is not checked: the probe judges parameters,
// it does not trust them.
func parseServerKeyExchange(body []byte, suite string) (KeyExchange, error) {
	s := cryptobyte.String(body)
	switch {
	case strings.Contains(suite, "PSK") || strings.Contains(suite, "SRP"):
		return KeyExchange{}, nil // other layouts; nothing this probe needs
	case strings.Contains(suite, "_DHE_") || strings.Contains(suite, "_DH_anon_"):
		var p, g, y cryptobyte.String
		if !s.ReadUint16LengthPrefixed(&p) || !s.ReadUint16LengthPrefixed(&g) || !s.ReadUint16LengthPrefixed(&y) ||
			len(p) == 0 || len(g) == 0 || len(y) == 0 {
			return KeyExchange{}, fmt.Errorf("%w: bad DHE parameters", ErrBadFlight)
		}
		return KeyExchange{Kind: "dhe", P: append([]byte(nil), p...), G: append([]byte(nil), g...), Ys: append([]byte(nil), y...)}, nil
	case strings.Contains(suite, "_ECDHE_") || strings.Contains(suite, "_ECDH_anon_"):
		var curveType uint8
		var curve uint16
		var point cryptobyte.String
		if !s.ReadUint8(&curveType) || curveType != 3 || !s.ReadUint16(&curve) || !s.ReadUint8LengthPrefixed(&point) || len(point) == 0 {
			return KeyExchange{}, fmt.Errorf("%w: bad ECDHE parameters (only named curves are allowed, RFC 8422 §5.4)", ErrBadFlight)
		}
		return KeyExchange{Kind: "ecdhe", Curve: curve}, nil
	case strings.HasPrefix(suite, "TLS_RSA_WITH_"):
		return KeyExchange{}, fmt.Errorf("%w: a ServerKeyExchange for %s, which has none", ErrBadFlight, suite)
	}
	return KeyExchange{}, nil // RSA_EXPORT's temporary key, or a suite the prober does not know
}
