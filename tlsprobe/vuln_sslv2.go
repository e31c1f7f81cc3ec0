package tlsprobe

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// SSLv2Cipher is an SSLv2 cipher kind (three bytes on the wire).
type SSLv2Cipher struct {
	ID   uint32
	Name string
}

// SSLv2Ciphers are the seven cipher kinds of the SSLv2 draft; the probe
// offers them all, since DROWN needs only one.
var SSLv2Ciphers = []SSLv2Cipher{
	{0x010080, "SSL_CK_RC4_128_WITH_MD5"},
	{0x020080, "SSL_CK_RC4_128_EXPORT40_WITH_MD5"},
	{0x030080, "SSL_CK_RC2_128_CBC_WITH_MD5"},
	{0x040080, "SSL_CK_RC2_128_CBC_EXPORT40_WITH_MD5"},
	{0x050080, "SSL_CK_IDEA_128_CBC_WITH_MD5"},
	{0x060040, "SSL_CK_DES_64_CBC_WITH_MD5"},
	{0x0700C0, "SSL_CK_DES_192_EDE3_CBC_WITH_MD5"},
}

// SSLv2CipherName is a cipher kind's name, or its hex value when unknown.
func SSLv2CipherName(id uint32) string {
	for _, c := range SSLv2Ciphers {
		if c.ID == id {
			return c.Name
		}
	}
	return fmt.Sprintf("0x%06X", id)
}

// SSLv2ServerHello is the part of an SSLv2 SERVER-HELLO the DROWN probe
// reports.
type SSLv2ServerHello struct {
	Version         uint16 // 0x0002
	CertificateSize int
	Ciphers         []uint32
}

// ErrSSLv2Error is an SSLv2 ERROR message: the server speaks SSLv2 but
// refused the hello.
var ErrSSLv2Error = errors.New("SSLv2 ERROR message")

// SSLv2ClientHello is an SSLv2 CLIENT-HELLO record (two-byte header)
// offering every SSLv2 cipher kind and version 2 only.
func SSLv2ClientHello() []byte {
	challenge := make([]byte, 16)
	_, _ = rand.Read(challenge)
	body := []byte{1, 0x00, 0x02, 0, byte(3 * len(SSLv2Ciphers)), 0, 0, 0, byte(len(challenge))}
	for _, c := range SSLv2Ciphers {
		body = append(body, byte(c.ID>>16), byte(c.ID>>8), byte(c.ID))
	}
	body = append(body, challenge...)
	return append([]byte{0x80 | byte(len(body)>>8), byte(len(body))}, body...)
}

// maxSSLv2Record bounds an SSLv2 record (15-bit length with the two-byte
// header, 14-bit with the three-byte one).
const maxSSLv2Record = 0x7FFF

// HelloSSLv2 sends an SSLv2 CLIENT-HELLO on conn and reads the answer: a
// SERVER-HELLO, or an error matching ErrDeclined (a TLS record, which a
// TLS-only server sends to refuse, or a hang-up), ErrSSLv2Error, or
// ErrNotTLS for garbage.
func HelloSSLv2(ctx context.Context, conn net.Conn) (*SSLv2ServerHello, error) {
	stop := wire.Bind(ctx, conn)
	defer stop()
	if _, err := conn.Write(SSLv2ClientHello()); err != nil {
		return nil, wire.DeclinedIfReset(err)
	}
	return ReadSSLv2ServerHello(conn)
}

// ReadSSLv2ServerHello reads one SSLv2 record and parses the SERVER-HELLO
// in it.
func ReadSSLv2ServerHello(r io.Reader) (*SSLv2ServerHello, error) {
	hdr := make([]byte, 2)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, wire.DeclinedIfReset(err)
	}
	if (hdr[0] == 21 || hdr[0] == 22) && hdr[1] == 3 {
		// A TLS record: the server answered in TLS (an alert, or a
		// ServerHello for a version it prefers): SSLv2 is not spoken.
		return nil, fmt.Errorf("%w: a TLS record (type %d) answered the SSLv2 hello", ErrDeclined, hdr[0])
	}
	var n int
	if hdr[0]&0x80 != 0 {
		n = int(hdr[0]&0x7F)<<8 | int(hdr[1])
	} else {
		// Three-byte header: the third byte is the padding length.
		pad := make([]byte, 1)
		if _, err := io.ReadFull(r, pad); err != nil {
			return nil, fmt.Errorf("%w: SSLv2 header cut short", ErrNotTLS)
		}
		n = int(hdr[0]&0x3F)<<8 | int(hdr[1])
	}
	if n == 0 || n > maxSSLv2Record {
		return nil, fmt.Errorf("%w: SSLv2 record length %d", ErrNotTLS, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, fmt.Errorf("%w: reading a %d-byte SSLv2 record: %w", ErrNotTLS, n, io.ErrUnexpectedEOF)
	}
	return ParseSSLv2ServerHello(body)
}

// ParseSSLv2ServerHello parses an SSLv2 record body that must hold a
// SERVER-HELLO (message type 4) or an ERROR (type 0).
func ParseSSLv2ServerHello(b []byte) (*SSLv2ServerHello, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty SSLv2 record", ErrNotTLS)
	}
	switch b[0] {
	case 0:
		if len(b) < 3 {
			return nil, fmt.Errorf("%w: short SSLv2 ERROR", ErrNotTLS)
		}
		return nil, fmt.Errorf("%w: code %d", ErrSSLv2Error, int(b[1])<<8|int(b[2]))
	case 4:
	default:
		return nil, fmt.Errorf("%w: SSLv2 message type %d where a SERVER-HELLO was due", ErrNotTLS, b[0])
	}
	// type, session_id_hit, certificate_type, version(2),
	// certificate_length(2), cipher_specs_length(2), connection_id_length(2)
	if len(b) < 11 {
		return nil, fmt.Errorf("%w: SSLv2 SERVER-HELLO of %d bytes", ErrNotTLS, len(b))
	}
	sh := &SSLv2ServerHello{Version: uint16(b[3])<<8 | uint16(b[4])}
	certLen := int(b[5])<<8 | int(b[6])
	specLen := int(b[7])<<8 | int(b[8])
	connIDLen := int(b[9])<<8 | int(b[10])
	if sh.Version != 2 {
		return nil, fmt.Errorf("%w: SSLv2 SERVER-HELLO with version 0x%04X", ErrNotTLS, sh.Version)
	}
	if specLen%3 != 0 || connIDLen < 16 || connIDLen > 32 || 11+certLen+specLen+connIDLen != len(b) {
		return nil, fmt.Errorf("%w: SSLv2 SERVER-HELLO lengths (certificate %d, ciphers %d, connection id %d) do not fit %d bytes",
			ErrNotTLS, certLen, specLen, connIDLen, len(b))
	}
	sh.CertificateSize = certLen
	specs := b[11+certLen : 11+certLen+specLen]
	for i := 0; i < len(specs); i += 3 {
		sh.Ciphers = append(sh.Ciphers, uint32(specs[i])<<16|uint32(specs[i+1])<<8|uint32(specs[i+2]))
	}
	return sh, nil
}
