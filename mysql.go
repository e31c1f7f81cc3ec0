package starttls

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// MySQL and MariaDB (client/server protocol, "Protocol::SSLRequest"): the
// server greets with its initial handshake packet; a client that wants TLS
// answers with a 32-byte SSLRequest (sequence id 1) carrying CLIENT_SSL,
// and both sides start TLS at once: there is no go-ahead. The client then
// sends its HandshakeResponse inside TLS (sequence id 2), which is the
// application's business, together with the scramble of the plaintext
// handshake (Conn.CapabilitiesBefore "AUTH-DATA").

// MySQL is the protocol name.
const MySQL Protocol = "mysql"

func init() {
	register(&spec{name: MySQL, port: 3306, client: mysqlClient(), server: mysqlServer()})
}

// Capability flags (CLIENT_*).
const (
	MySQLClientLongPassword     uint32 = 1 // CLIENT_MYSQL for MariaDB
	MySQLClientFoundRows        uint32 = 2
	MySQLClientLongFlag         uint32 = 4
	MySQLClientConnectWithDB    uint32 = 8
	MySQLClientProtocol41       uint32 = 0x200
	MySQLClientSSL              uint32 = 0x800
	MySQLClientTransactions     uint32 = 0x2000
	MySQLClientSecureConnection uint32 = 0x8000
	MySQLClientMultiStatements  uint32 = 0x10000
	MySQLClientMultiResults     uint32 = 0x20000
	MySQLClientPluginAuth       uint32 = 0x80000
)

var mysqlFlagNames = []struct {
	f    uint32
	name string
}{
	{MySQLClientLongPassword, "CLIENT_LONG_PASSWORD"}, {MySQLClientFoundRows, "CLIENT_FOUND_ROWS"},
	{MySQLClientLongFlag, "CLIENT_LONG_FLAG"}, {MySQLClientConnectWithDB, "CLIENT_CONNECT_WITH_DB"},
	{MySQLClientProtocol41, "CLIENT_PROTOCOL_41"}, {MySQLClientSSL, "CLIENT_SSL"},
	{MySQLClientTransactions, "CLIENT_TRANSACTIONS"}, {MySQLClientSecureConnection, "CLIENT_SECURE_CONNECTION"},
	{MySQLClientMultiStatements, "CLIENT_MULTI_STATEMENTS"}, {MySQLClientMultiResults, "CLIENT_MULTI_RESULTS"},
	{MySQLClientPluginAuth, "CLIENT_PLUGIN_AUTH"},
}

// Bounds: a real initial handshake is about 100 bytes; a HandshakeResponse
// with connection attributes a few hundred.
const (
	mysqlMaxHandshake = 8192
	mysqlMaxResponse  = 16384
	mysqlSSLRequestN  = 32
	mysqlPluginName   = "mysql_native_password"
	mysqlVersion      = "8.0.0-starttls-go"
)

// MySQLHandshake is a parsed initial handshake packet (protocol 10).
type MySQLHandshake struct {
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

// ParseMySQLHandshake parses the payload of an initial handshake packet.
func ParseMySQLHandshake(p []byte) (MySQLHandshake, error) {
	var h MySQLHandshake
	bad := func(format string, args ...any) (MySQLHandshake, error) {
		return MySQLHandshake{}, fmt.Errorf("%w: initial handshake: %s", ErrProtocol, fmt.Sprintf(format, args...))
	}
	if len(p) > mysqlMaxHandshake {
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
	if h.Capabilities&MySQLClientLongPassword == 0 {
		h.MariaDBCapabilities = binary.LittleEndian.Uint32(p[12:])
	}
	p = p[16:]
	if h.Capabilities&MySQLClientSecureConnection != 0 {
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
	if h.Capabilities&MySQLClientPluginAuth != 0 {
		// NUL-terminated; some old servers omit the NUL at the packet's end.
		if i := bytes.IndexByte(p, 0); i >= 0 {
			p = p[:i]
		}
		h.AuthPlugin = string(p)
	}
	return h, nil
}

// capabilities lists what the handshake says, for Conn.CapabilitiesBefore.
func (h MySQLHandshake) capabilities() Capabilities {
	var c Capabilities
	for _, f := range mysqlFlagNames {
		if h.Capabilities&f.f != 0 {
			c = append(c, f.name)
		}
	}
	c = append(c, fmt.Sprintf("CAPABILITIES 0x%08x", h.Capabilities))
	if h.MariaDBCapabilities != 0 {
		c = append(c, fmt.Sprintf("MARIADB-CAPABILITIES 0x%08x", h.MariaDBCapabilities))
	}
	c = append(c, "CONNECTION-ID "+strconv.FormatUint(uint64(h.ConnectionID), 10),
		"CHARSET "+strconv.Itoa(int(h.Charset)))
	if h.AuthPlugin != "" {
		c = append(c, "AUTH-PLUGIN "+pgPrintable([]byte(h.AuthPlugin)))
	}
	if len(h.AuthData) > 0 {
		c = append(c, "AUTH-DATA "+hex.EncodeToString(h.AuthData))
	}
	return c
}

// MySQLError is a parsed ERR packet.
type MySQLError struct {
	Code     uint16
	SQLState string // "" when the packet has none
	Message  string
}

func (e MySQLError) String() string {
	s := "ERROR " + strconv.Itoa(int(e.Code))
	if e.SQLState != "" {
		s += " (" + e.SQLState + ")"
	}
	return s + ": " + e.Message
}

// ParseMySQLError parses the payload of an ERR packet (0xff first).
func ParseMySQLError(p []byte) (MySQLError, error) {
	if len(p) < 3 || p[0] != 0xff {
		return MySQLError{}, fmt.Errorf("%w: malformed ERR packet", ErrProtocol)
	}
	e := MySQLError{Code: binary.LittleEndian.Uint16(p[1:])}
	p = p[3:]
	if len(p) >= 6 && p[0] == '#' {
		e.SQLState = pgPrintable(p[1:6])
		p = p[6:]
	}
	e.Message = pgPrintable(p)
	return e, nil
}

func mysqlErrPacket(seq byte, code uint16, state, msg string, proto41 bool) []byte {
	payload := []byte{0xff, byte(code), byte(code >> 8)}
	if proto41 {
		payload = append(payload, '#')
		payload = append(payload, state...)
	}
	payload = append(payload, msg...)
	return mysqlPacket(seq, payload)
}

func mysqlPacket(seq byte, payload []byte) []byte {
	n := len(payload)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), seq}, payload...)
}

// mysqlReadPacket reads one packet of at most limit payload bytes.
func mysqlReadPacket(readFull func([]byte) error, limit int) (seq byte, payload []byte, err error) {
	var hdr [4]byte
	if err := readFull(hdr[:]); err != nil {
		return 0, nil, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > limit {
		return hdr[3], nil, fmt.Errorf("%w: packet of %d bytes (limit %d)", ErrTooMuchData, n, limit)
	}
	payload = make([]byte, n)
	if err := readFull(payload); err != nil {
		return hdr[3], nil, err
	}
	return hdr[3], payload, nil
}

// mysqlCapNumber reads the number of a "NAME n" capability entry (0 if none).
func mysqlCapNumber(c Capabilities, name string) uint64 {
	args, _ := c.Args(name)
	if len(args) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(args[0], 0, 32)
	return n
}

func mysqlClient() *clientHalf {
	return &clientHalf{
		greet: func(s *clientSession) error {
			seq, p, err := mysqlReadPacket(s.readFull, mysqlMaxHandshake)
			if err != nil {
				return s.ioErr(err)
			}
			if seq != 0 {
				return s.failf(ErrProtocol, "", "initial handshake with sequence id %d", seq)
			}
			if len(p) > 0 && p[0] == 0xff {
				e, err := ParseMySQLError(p)
				if err != nil {
					return s.fail(err, quote(p))
				}
				s.record(false, e.String())
				return s.failf(ErrRefused, e.String(), "server refused the connection")
			}
			h, err := ParseMySQLHandshake(p)
			if err != nil {
				return s.fail(err, quote(p))
			}
			s.record(false, fmt.Sprintf("handshake v%d %s caps 0x%08x", h.ProtocolVersion, h.ServerVersion, h.Capabilities))
			s.c.Greeting = pgPrintable([]byte(h.ServerVersion))
			s.caps = h.capabilities()
			s.offered = h.Capabilities&MySQLClientSSL != 0
			return nil
		},
		upgrade: func(s *clientSession) error {
			// What greet learned is in the pre-TLS capabilities (the client
			// session has no per-protocol state).
			before := s.c.CapabilitiesBefore
			server := uint32(mysqlCapNumber(before, "CAPABILITIES"))
			var charset byte = 45 // utf8mb4_general_ci
			if cs := mysqlCapNumber(before, "CHARSET"); cs > 0 && cs < 45 {
				charset = 33 // utf8_general_ci, for servers without utf8mb4
			}
			caps := (MySQLClientLongPassword|MySQLClientLongFlag|MySQLClientTransactions|
				MySQLClientMultiResults|MySQLClientPluginAuth)&server |
				MySQLClientSSL | MySQLClientProtocol41 | MySQLClientSecureConnection
			// The server answers nothing: the generic check right after this
			// call catches a server that talks (response injection), as far
			// as its bytes have arrived; later ones reach the TLS handshake
			// and fail it.
			return s.sendRaw(mysqlSSLRequest(caps, charset), fmt.Sprintf("SSLRequest caps 0x%08x", caps))
		},
	}
}

// mysqlSSLRequest builds the SSLRequest packet (sequence id 1).
func mysqlSSLRequest(caps uint32, charset byte) []byte {
	p := make([]byte, mysqlSSLRequestN)
	binary.LittleEndian.PutUint32(p, caps)
	binary.LittleEndian.PutUint32(p[4:], 1<<24) // max packet size
	p[8] = charset
	return mysqlPacket(1, p)
}

// mysqlHandshakePacket builds our initial handshake (sequence id 0).
func mysqlHandshakePacket(connID uint32, scramble []byte) []byte {
	caps := MySQLClientLongPassword | MySQLClientFoundRows | MySQLClientLongFlag | MySQLClientConnectWithDB |
		MySQLClientProtocol41 | MySQLClientSSL | MySQLClientTransactions | MySQLClientSecureConnection |
		MySQLClientMultiStatements | MySQLClientMultiResults | MySQLClientPluginAuth
	p := []byte{10}
	p = append(p, mysqlVersion...)
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
	p = append(p, mysqlPluginName...)
	p = append(p, 0)
	return mysqlPacket(0, p)
}

// MySQLResponse is what a client's first packet says.
type MySQLResponse struct {
	Capabilities  uint32
	MaxPacketSize uint32
	Charset       byte
	User          string // "" for an SSLRequest
}

// ParseMySQLResponse parses the payload of a client's first packet: an
// SSLRequest or a HandshakeResponse41.
func ParseMySQLResponse(p []byte) (MySQLResponse, error) {
	if len(p) < mysqlSSLRequestN {
		return MySQLResponse{}, fmt.Errorf("%w: client response of %d bytes", ErrProtocol, len(p))
	}
	r := MySQLResponse{Capabilities: binary.LittleEndian.Uint32(p), MaxPacketSize: binary.LittleEndian.Uint32(p[4:]), Charset: p[8]}
	if r.Capabilities&MySQLClientProtocol41 == 0 {
		return MySQLResponse{}, fmt.Errorf("%w: client without CLIENT_PROTOCOL_41", ErrProtocol)
	}
	rest := p[mysqlSSLRequestN:]
	if len(rest) > 0 {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return MySQLResponse{}, fmt.Errorf("%w: unterminated user name", ErrProtocol)
		}
		r.User = string(rest[:i])
	}
	return r, nil
}

func mysqlServer() *serverHalf {
	return &serverHalf{
		greet: func(s *serverSession) error {
			scramble := make([]byte, 20)
			_, _ = rand.Read(scramble)
			// The scramble bytes must not be NUL (clients read C strings).
			for i := range scramble {
				scramble[i] = 1 + scramble[i]%126
			}
			var id [4]byte
			_, _ = rand.Read(id[:])
			connID := binary.LittleEndian.Uint32(id[:]) & 0x7fffffff
			s.c.Greeting = mysqlVersion
			s.c.CapabilitiesBefore = Capabilities{"CONNECTION-ID " + strconv.FormatUint(uint64(connID), 10),
				"AUTH-PLUGIN " + mysqlPluginName, "AUTH-DATA " + hex.EncodeToString(scramble)}
			return s.sendRaw(mysqlHandshakePacket(connID, scramble), "handshake v10 "+mysqlVersion)
		},
		serve: func(s *serverSession) (action, error) {
			seq, p, err := mysqlReadPacket(s.readFull, mysqlMaxResponse)
			if err != nil {
				return 0, s.ioErr(err)
			}
			if seq != 1 {
				return 0, s.mysqlRefuse(ErrProtocol, seq+1, 1156, "08S01", "Got packets out of order", true,
					fmt.Sprintf("client packet with sequence id %d", seq))
			}
			r, err := ParseMySQLResponse(p)
			if err != nil {
				s.record(false, "malformed client response")
				return 0, s.mysqlRefuse(ErrProtocol, 2, 1043, "08S01", "Bad handshake", len(p) >= 4 &&
					binary.LittleEndian.Uint32(p)&MySQLClientProtocol41 != 0, err.Error())
			}
			if r.Capabilities&MySQLClientSSL != 0 {
				if len(p) != mysqlSSLRequestN {
					// CLIENT_SSL on a full response: the client claims TLS
					// while sending its credentials in plaintext.
					s.record(false, "HandshakeResponse with CLIENT_SSL")
					return 0, s.mysqlRefuse(ErrProtocol, 2, 1043, "08S01", "Bad handshake", true,
						"HandshakeResponse with CLIENT_SSL but no TLS")
				}
				s.record(false, fmt.Sprintf("SSLRequest caps 0x%08x", r.Capabilities))
				return actStartTLS, s.mysqlKeepClientHello()
			}
			s.record(false, fmt.Sprintf("HandshakeResponse user=%q", r.User))
			s.c.ClientName = r.User
			if s.cfg.Policy == Optional {
				s.c.pending = mysqlPacket(seq, p)
				return actHandoff, nil
			}
			return 0, s.mysqlRefuse(ErrRefused, 2, 3159, "HY000",
				"Connections using insecure transport are prohibited while --require_secure_transport=ON.", true,
				"plaintext HandshakeResponse; SSL required")
		},
	}
}

// mysqlRefuse sends an ERR packet and returns the error that ends the session.
func (s *serverSession) mysqlRefuse(cond error, seq byte, code uint16, state, msg string, proto41 bool, detail string) error {
	if err := s.sendRaw(mysqlErrPacket(seq, code, state, msg, proto41), "ERR "+strconv.Itoa(int(code))+" "+msg); err != nil {
		return err
	}
	return s.fail(fmt.Errorf("%w: %s", cond, strings.TrimSpace(detail)), "")
}

// mysqlKeepClientHello handles what the reader buffered behind the
// SSLRequest. There is no go-ahead in MySQL: clients send their ClientHello
// right behind the SSLRequest, often in the same segment, so bytes that
// start a TLS handshake record are the TLS session, not an injection. They
// are moved from the plaintext reader into the connection the handshake
// reads. Anything else stays buffered, for the generic injection check.
func (s *serverSession) mysqlKeepClientHello() error {
	n := s.r.Buffered()
	if n == 0 {
		return nil
	}
	b := s.r.Pending()
	if b[0] != 0x16 || (len(b) > 1 && b[1] != 0x03) {
		return nil
	}
	pre := make([]byte, n)
	if err := s.r.ReadFull(pre); err != nil {
		return s.ioErr(err)
	}
	s.raw = &prefixConn{Conn: s.raw, pre: pre}
	return nil
}

// prefixConn reads pre before the connection.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
