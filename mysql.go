package starttls

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/mysql"
	"github.com/starttls-go/starttls/internal/wire"
)

// MySQL and MariaDB (client/server protocol, "Protocol::SSLRequest"): the
// server greets with its initial handshake packet; a client that wants TLS
// answers with a 32-byte SSLRequest (sequence id 1) carrying CLIENT_SSL,
// and both sides start TLS at once: there is no go-ahead. The client then
// sends its HandshakeResponse inside TLS (sequence id 2), which is the
// application's business, together with the scramble of the plaintext
// handshake (Conn.CapabilitiesBefore "AUTH-DATA").

// mysqlVersion is the server version our handshake announces.
const mysqlVersion = "8.0.0-starttls-go"

// mysqlCapabilities lists what the handshake says, for Conn.CapabilitiesBefore.
func mysqlCapabilities(h mysql.Handshake) Capabilities {
	c := Capabilities(mysql.FlagNames(h.Capabilities))
	c = append(c, fmt.Sprintf("CAPABILITIES 0x%08x", h.Capabilities))
	if h.MariaDBCapabilities != 0 {
		c = append(c, fmt.Sprintf("MARIADB-CAPABILITIES 0x%08x", h.MariaDBCapabilities))
	}
	c = append(c, "CONNECTION-ID "+strconv.FormatUint(uint64(h.ConnectionID), 10),
		"CHARSET "+strconv.Itoa(int(h.Charset)))
	if h.AuthPlugin != "" {
		c = append(c, "AUTH-PLUGIN "+wire.Printable([]byte(h.AuthPlugin)))
	}
	if len(h.AuthData) > 0 {
		c = append(c, "AUTH-DATA "+hex.EncodeToString(h.AuthData))
	}
	return c
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
			seq, p, err := mysql.ReadPacket(s.readFull, mysql.MaxHandshake)
			if err != nil {
				return s.ioErr(err)
			}
			if seq != 0 {
				return s.failf(ErrProtocol, "", "initial handshake with sequence id %d", seq)
			}
			if len(p) > 0 && p[0] == 0xff {
				e, err := mysql.ParseError(p)
				if err != nil {
					return s.fail(err, quote(p))
				}
				s.record(false, e.String())
				return s.failf(ErrRefused, e.String(), "server refused the connection")
			}
			h, err := mysql.ParseHandshake(p)
			if err != nil {
				return s.fail(err, quote(p))
			}
			s.record(false, fmt.Sprintf("handshake v%d %s caps 0x%08x", h.ProtocolVersion, h.ServerVersion, h.Capabilities))
			s.c.Greeting = wire.Printable([]byte(h.ServerVersion))
			s.caps = mysqlCapabilities(h)
			s.offered = h.Capabilities&mysql.ClientSSL != 0
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
			caps := (mysql.ClientLongPassword|mysql.ClientLongFlag|mysql.ClientTransactions|
				mysql.ClientMultiResults|mysql.ClientPluginAuth)&server |
				mysql.ClientSSL | mysql.ClientProtocol41 | mysql.ClientSecureConnection
			// The server answers nothing: the generic check right after this
			// call catches a server that talks (response injection), as far
			// as its bytes have arrived; later ones reach the TLS handshake
			// and fail it.
			return s.sendRaw(mysql.SSLRequest(caps, charset), fmt.Sprintf("SSLRequest caps 0x%08x", caps))
		},
	}
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
				"AUTH-PLUGIN " + mysql.NativePassword, "AUTH-DATA " + hex.EncodeToString(scramble)}
			return s.sendRaw(mysql.HandshakePacket(mysqlVersion, connID, scramble), "handshake v10 "+mysqlVersion)
		},
		serve: func(s *serverSession) (action, error) {
			seq, p, err := mysql.ReadPacket(s.readFull, mysql.MaxResponse)
			if err != nil {
				return 0, s.ioErr(err)
			}
			if seq != 1 {
				return 0, s.mysqlRefuse(ErrProtocol, seq+1, 1156, "08S01", "Got packets out of order", true,
					fmt.Sprintf("client packet with sequence id %d", seq))
			}
			r, err := mysql.ParseResponse(p)
			if err != nil {
				s.record(false, "malformed client response")
				return 0, s.mysqlRefuse(ErrProtocol, 2, 1043, "08S01", "Bad handshake", len(p) >= 4 &&
					binary.LittleEndian.Uint32(p)&mysql.ClientProtocol41 != 0, err.Error())
			}
			if r.Capabilities&mysql.ClientSSL != 0 {
				if len(p) != mysql.SSLRequestLen {
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
				s.c.pending = mysql.Packet(seq, p)
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
	if err := s.sendRaw(mysql.ErrPacket(seq, code, state, msg, proto41), "ERR "+strconv.Itoa(int(code))+" "+msg); err != nil {
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
