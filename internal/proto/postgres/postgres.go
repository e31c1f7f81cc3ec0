// Package postgres is the wire codec of the PostgreSQL frontend/backend
// protocol's startup phase, as far as the TLS upgrade needs it: the
// SSLRequest, startup packets from a client and ErrorResponse messages.
//
// It is internal: the root package's PostgreSQL dialogue, serve and
// clienttest share it, and it may change with them.
package postgres

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/wire"
)

// ALPN is the ALPN protocol of PostgreSQL direct SSL connections: PostgreSQL
// 17 servers reject direct SSL without it.
const ALPN = "postgresql"

// Codes in the first field of startup-phase packets.
const (
	CodeSSLRequest    = 80877103 // 1234<<16 | 5679
	CodeGSSENCRequest = 80877104 // 1234<<16 | 5680
	CodeCancelRequest = 80877102 // 1234<<16 | 5678
	Protocol3         = 3 << 16  // protocol version 3.0 in a StartupMessage
)

// Bounds. The server's own limit on a startup packet is 10000 bytes
// (MAX_STARTUP_PACKET_LENGTH); an ErrorResponse during SSL negotiation is a
// short message.
const (
	MaxStartupPacket = 10000
	MaxErrorResponse = 4096
)

// SSLRequest is the 8-byte SSLRequest packet.
var SSLRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// GSSENCRequest is the 8-byte GSSENCRequest packet (PostgreSQL 12).
var GSSENCRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}

// Error is a parsed ErrorResponse (or NoticeResponse) body.
type Error struct {
	Severity string // 'S' (localized) or 'V'
	Code     string // 'C', SQLSTATE
	Message  string // 'M'
	Fields   map[byte]string
}

func (e Error) String() string {
	var b strings.Builder
	b.WriteString(e.Severity)
	if e.Code != "" {
		b.WriteString(" " + e.Code)
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return wire.Printable([]byte(b.String()))
}

// ParseError parses the body of an ErrorResponse (after the type
// byte and the length): fields of a type byte and a C string, ended by a
// zero byte.
func ParseError(body []byte) (Error, error) {
	e := Error{Fields: map[byte]string{}}
	for {
		if len(body) == 0 {
			return Error{}, fmt.Errorf("%w: error response without terminator", wire.ErrProtocol)
		}
		t := body[0]
		body = body[1:]
		if t == 0 {
			if len(body) != 0 {
				return Error{}, fmt.Errorf("%w: %d bytes after the error response's terminator", wire.ErrProtocol, len(body))
			}
			break
		}
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return Error{}, fmt.Errorf("%w: unterminated field %q in error response", wire.ErrProtocol, t)
		}
		e.Fields[t] = string(body[:i])
		body = body[i+1:]
	}
	e.Severity = e.Fields['V']
	if e.Severity == "" {
		e.Severity = e.Fields['S']
	}
	e.Code, e.Message = e.Fields['C'], e.Fields['M']
	return e, nil
}

// ErrorResponse builds an ErrorResponse message with the severity in both
// its localized (S) and its fixed (V) field.
func ErrorResponse(severity, code, msg string) []byte {
	var body []byte
	for _, f := range []struct {
		t byte
		v string
	}{{'S', severity}, {'V', severity}, {'C', code}, {'M', msg}} {
		body = append(body, f.t)
		body = append(body, f.v...)
		body = append(body, 0)
	}
	body = append(body, 0)
	out := []byte{'E', 0, 0, 0, 0}
	binary.BigEndian.PutUint32(out[1:], uint32(len(body)+4))
	return append(out, body...)
}

// Startup is a parsed startup-phase packet from a client.
type Startup struct {
	Code   uint32            // SSLRequest, GSSENCRequest, CancelRequest codes or the protocol version
	Params map[string]string // StartupMessage parameters (user, database, ...)
}

// ParseStartup parses one complete startup-phase packet, length
// included.
func ParseStartup(pkt []byte) (Startup, error) {
	if len(pkt) < 8 {
		return Startup{}, fmt.Errorf("%w: startup packet of %d bytes", wire.ErrProtocol, len(pkt))
	}
	if n := binary.BigEndian.Uint32(pkt); int64(n) != int64(len(pkt)) {
		return Startup{}, fmt.Errorf("%w: startup packet length %d, have %d bytes", wire.ErrProtocol, n, len(pkt))
	}
	p := Startup{Code: binary.BigEndian.Uint32(pkt[4:])}
	switch p.Code {
	case CodeSSLRequest, CodeGSSENCRequest:
		if len(pkt) != 8 {
			return Startup{}, fmt.Errorf("%w: negotiation request of %d bytes", wire.ErrProtocol, len(pkt))
		}
		return p, nil
	case CodeCancelRequest:
		if len(pkt) < 12 {
			return Startup{}, fmt.Errorf("%w: cancel request of %d bytes", wire.ErrProtocol, len(pkt))
		}
		return p, nil
	}
	if p.Code>>16 != 3 {
		return Startup{}, fmt.Errorf("%w: unsupported frontend protocol %d.%d", wire.ErrProtocol, p.Code>>16, p.Code&0xffff)
	}
	// Parameters: pairs of C strings, ended by an empty name.
	p.Params = map[string]string{}
	rest := pkt[8:]
	for {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return Startup{}, fmt.Errorf("%w: unterminated startup parameter", wire.ErrProtocol)
		}
		name := string(rest[:i])
		rest = rest[i+1:]
		if name == "" {
			if len(rest) != 0 {
				return Startup{}, fmt.Errorf("%w: %d bytes after the startup parameters", wire.ErrProtocol, len(rest))
			}
			return p, nil
		}
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return Startup{}, fmt.Errorf("%w: unterminated value of startup parameter %q", wire.ErrProtocol, name)
		}
		p.Params[name] = string(rest[:j])
		rest = rest[j+1:]
	}
}
