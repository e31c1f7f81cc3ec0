// Package mysql is the wire codec of the MySQL and MariaDB client/server
// protocol, as far as the TLS upgrade needs it: packet framing, the
// server's initial handshake, the client's SSLRequest and
// HandshakeResponse41, and ERR packets. It parses and builds bytes and
// does no I/O of its own beyond ReadPacket's callback.
//
// It is internal: the root package's MySQL dialogue, check, serve and
// clienttest share it, and it may change with them.
package mysql

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/starttls-go/starttls/internal/wire"
)

// Capability flags (CLIENT_*).
const (
	ClientLongPassword     uint32 = 1 // CLIENT_MYSQL for MariaDB
	ClientFoundRows        uint32 = 2
	ClientLongFlag         uint32 = 4
	ClientConnectWithDB    uint32 = 8
	ClientProtocol41       uint32 = 0x200
	ClientSSL              uint32 = 0x800
	ClientTransactions     uint32 = 0x2000
	ClientSecureConnection uint32 = 0x8000
	ClientMultiStatements  uint32 = 0x10000
	ClientMultiResults     uint32 = 0x20000
	ClientPluginAuth       uint32 = 0x80000
)

var flagNames = []struct {
	f    uint32
	name string
}{
	{ClientLongPassword, "CLIENT_LONG_PASSWORD"}, {ClientFoundRows, "CLIENT_FOUND_ROWS"},
	{ClientLongFlag, "CLIENT_LONG_FLAG"}, {ClientConnectWithDB, "CLIENT_CONNECT_WITH_DB"},
	{ClientProtocol41, "CLIENT_PROTOCOL_41"}, {ClientSSL, "CLIENT_SSL"},
	{ClientTransactions, "CLIENT_TRANSACTIONS"}, {ClientSecureConnection, "CLIENT_SECURE_CONNECTION"},
	{ClientMultiStatements, "CLIENT_MULTI_STATEMENTS"}, {ClientMultiResults, "CLIENT_MULTI_RESULTS"},
	{ClientPluginAuth, "CLIENT_PLUGIN_AUTH"},
}

// Bounds: a real initial handshake is about 100 bytes; a HandshakeResponse
// with connection attributes a few hundred.
const (
	MaxHandshake  = 8192
	MaxResponse   = 16384
	SSLRequestLen = 32
	// NativePassword is the authentication plugin our handshake offers.
	NativePassword = "mysql_native_password"
)

// Handshake is a parsed initial handshake packet (protocol 10).
type Handshake struct {
	ProtocolVersion byte
	ServerVersion   string
	ConnectionID    uint32
	Capabilities    uint32 // lower and upper halves
	// MariaDBCapabilities are MariaDB's extended capabilities, from the
	// last 4 of the 10 reserved bytes (when CLIENT_MYSQL is clear).
	MariaDBCapabilities uint32
	Charset             byte
	Status              uint16
	AuthData            []byte // part 1 and part 2, without the trailing NUL
	AuthPlugin          string
}

// ParseHandshake parses the payload of an initial handshake packet.
func ParseHandshake(p []byte) (Handshake, error) {
	var h Handshake
	bad := func(format string, args ...any) (Handshake, error) {
		return Handshake{}, fmt.Errorf("%w: initial handshake: %s", wire.ErrProtocol, fmt.Sprintf(format, args...))
	}
	if len(p) > MaxHandshake {
		return bad("%d bytes", len(p))
	}
	if len(p) == 0 {
		return bad("empty packet")
	}
	if h.ProtocolVersion = p[0]; h.ProtocolVersion != 10 {
		return bad("protocol version %d, want 10", p[0])
	}
	p = p[1:]
	i := bytes.IndexByte(p, 0)
	if i < 0 {
		return bad("unterminated server version")
	}
	h.ServerVersion = string(p[:i])
	p = p[i+1:]
	// connection id 4, auth data part 1 8, filler 1, capabilities low 2
	if len(p) < 15 {
		return bad("truncated after the server version")
	}
	h.ConnectionID = binary.LittleEndian.Uint32(p)
	h.AuthData = append([]byte(nil), p[4:12]...)
	if p[12] != 0 {
		return bad("filler byte 0x%02x", p[12])
	}
	h.Capabilities = uint32(binary.LittleEndian.Uint16(p[13:]))
	p = p[15:]
	if len(p) == 0 {
		return h, nil // protocol 4.0 servers stop here
	}
	// charset 1, status 2, capabilities high 2, auth data length 1, reserved 10
	if len(p) < 16 {
		return bad("truncated after the capability flags")
	}
	h.Charset = p[0]
	h.Status = binary.LittleEndian.Uint16(p[1:])
	h.Capabilities |= uint32(binary.LittleEndian.Uint16(p[3:])) << 16
	authLen := int(p[5])
	if h.Capabilities&ClientLongPassword == 0 {
		h.MariaDBCapabilities = binary.LittleEndian.Uint32(p[12:])
	}
	p = p[16:]
	if h.Capabilities&ClientSecureConnection != 0 {
		n := max(13, authLen-8)
		if len(p) < n {
			return bad("truncated auth plugin data (%d of %d bytes)", len(p), n)
		}
		part := p[:n]
		// The scramble ends with a NUL that is not part of it.
		if k := len(part); k > 0 && part[k-1] == 0 {
			part = part[:k-1]
		}
		h.AuthData = append(h.AuthData, part...)
		p = p[n:]
	}
	if h.Capabilities&ClientPluginAuth != 0 {
		// NUL-terminated; some old servers omit the NUL at the packet's end.
		if i := bytes.IndexByte(p, 0); i >= 0 {
			p = p[:i]
		}
		h.AuthPlugin = string(p)
	}
	return h, nil
}

// FlagNames lists the CLIENT_* names of the known flags in caps, in the
// order of their bits.
func FlagNames(caps uint32) []string {
	var names []string
	for _, f := range flagNames {
		if caps&f.f != 0 {
			names = append(names, f.name)
		}
	}
	return names
}

// Error is a parsed ERR packet.
type Error struct {
	Code     uint16
	SQLState string // "" when the packet has none
	Message  string
}

func (e Error) String() string {
	s := "ERROR " + strconv.Itoa(int(e.Code))
	if e.SQLState != "" {
		s += " (" + e.SQLState + ")"
	}
	return s + ": " + e.Message
}

// ParseError parses the payload of an ERR packet (0xff first).
func ParseError(p []byte) (Error, error) {
	if len(p) < 3 || p[0] != 0xff {
		return Error{}, fmt.Errorf("%w: malformed ERR packet", wire.ErrProtocol)
	}
	e := Error{Code: binary.LittleEndian.Uint16(p[1:])}
	p = p[3:]
	if len(p) >= 6 && p[0] == '#' {
		e.SQLState = wire.Printable(p[1:6])
		p = p[6:]
	}
	e.Message = wire.Printable(p)
	return e, nil
}

// ErrPacket builds an ERR packet; the SQL state goes in only for clients
// that speak protocol 4.1.
func ErrPacket(seq byte, code uint16, state, msg string, proto41 bool) []byte {
	payload := []byte{0xff, byte(code), byte(code >> 8)}
	if proto41 {
		payload = append(payload, '#')
		payload = append(payload, state...)
	}
	payload = append(payload, msg...)
	return Packet(seq, payload)
}

// Packet frames payload: a 3-byte little-endian length and the sequence id.
func Packet(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// ReadPacket reads one packet of at most limit payload bytes through
// readFull, which must read exactly len(p) bytes or fail.
func ReadPacket(readFull func([]byte) error, limit int) (seq byte, payload []byte, err error) {
	var hdr [4]byte
	if err := readFull(hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > limit {
		return hdr[3], nil, fmt.Errorf("%w: packet of %d bytes (limit %d)", wire.ErrTooMuchData, n, limit)
	}
	payload = make([]byte, n)
	if err := readFull(payload); err != nil {
		return hdr[3], nil, err
	}
	return hdr[3], payload, nil
}

// SSLRequest builds the SSLRequest packet (sequence id 1).
func SSLRequest(caps uint32, charset byte) []byte {
	p := make([]byte, SSLRequestLen)
	binary.LittleEndian.PutUint32(p, caps)
	binary.LittleEndian.PutUint32(p[4:], 1<<24) // max packet size
	p[8] = charset
	return Packet(1, p)
}

// HandshakeResponse builds the payload of a HandshakeResponse41 for user
// with an empty auth response (no password at all) and charset
// utf8mb4_general_ci; it names mysql_native_password when caps has
// CLIENT_PLUGIN_AUTH.
func HandshakeResponse(caps uint32, user string) []byte {
	p := binary.LittleEndian.AppendUint32(nil, caps)
	p = binary.LittleEndian.AppendUint32(p, 1<<24) // max packet size
	p = append(p, 45)                              // utf8mb4_general_ci
	p = append(p, make([]byte, 23)...)
	p = append(p, user...)
	p = append(p, 0, 0)
	if caps&ClientPluginAuth != 0 {
		p = append(p, NativePassword...)
		p = append(p, 0)
	}
	return p
}

// Describe names the server packet at the start of b (header included),
// for evidence: its kind, sequence id and first bytes.
func Describe(b []byte) string {
	if len(b) < 5 {
		return fmt.Sprintf("% x", b)
	}
	kind := map[byte]string{0x00: "OK packet", 0xfe: "authentication switch request", 0x01: "authentication data", 0xff: "ERR packet"}[b[4]]
	if kind == "" {
		kind = "a packet"
	}
	if e, err := ParseError(b[4:min(len(b), 4+int(b[0])|int(b[1])<<8|int(b[2])<<16)]); err == nil {
		kind = e.String()
	}
	return fmt.Sprintf("%s (sequence id %d; %d bytes: % x)", kind, b[3], len(b), b[:min(len(b), 24)])
}

// HandshakePacket builds a server's initial handshake (sequence id 0)
// offering TLS and mysql_native_password with the given 20-byte scramble.
func HandshakePacket(version string, connID uint32, scramble []byte) []byte {
	caps := ClientLongPassword | ClientFoundRows | ClientLongFlag | ClientConnectWithDB |
		ClientProtocol41 | ClientSSL | ClientTransactions | ClientSecureConnection |
		ClientMultiStatements | ClientMultiResults | ClientPluginAuth
	p := []byte{10}
	p = append(p, version...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint32(p, connID)
	p = append(p, scramble[:8]...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, 45)                          // utf8mb4_general_ci
	p = binary.LittleEndian.AppendUint16(p, 2) // SERVER_STATUS_AUTOCOMMIT
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, byte(len(scramble)+1))
	p = append(p, make([]byte, 10)...)
	p = append(p, scramble[8:]...)
	p = append(p, 0)
	p = append(p, NativePassword...)
	p = append(p, 0)
	return Packet(0, p)
}

// Response is what a client's first packet says.
type Response struct {
	Capabilities  uint32
	MaxPacketSize uint32
	Charset       byte
	User          string // "" for an SSLRequest
}

// ParseResponse parses the payload of a client's first packet: an
// SSLRequest or a HandshakeResponse41.
func ParseResponse(p []byte) (Response, error) {
	if len(p) < SSLRequestLen {
		return Response{}, fmt.Errorf("%w: client response of %d bytes", wire.ErrProtocol, len(p))
	}
	r := Response{Capabilities: binary.LittleEndian.Uint32(p), MaxPacketSize: binary.LittleEndian.Uint32(p[4:]), Charset: p[8]}
	if r.Capabilities&ClientProtocol41 == 0 {
		return Response{}, fmt.Errorf("%w: client without CLIENT_PROTOCOL_41", wire.ErrProtocol)
	}
	rest := p[SSLRequestLen:]
	if len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return Response{}, fmt.Errorf("%w: unterminated user name", wire.ErrProtocol)
		}
		r.User = string(rest[:i])
	}
	return r, nil
}
