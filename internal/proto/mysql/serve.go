package mysql

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/wire"
)

// MySQL/MariaDB inside TLS: the client's HandshakeResponse41, checked
// against serve's users with mysql_native_password (the scramble is the
// one the server half sent before TLS, kept in Conn.CapabilitiesBefore),
// then COM_QUERY for `select 1`-style and `select @@version`, COM_PING and
// COM_QUIT. Anything else is an ERR packet and the session goes on.

const (
	// serveMaxPacket bounds one client packet; a packet of 2^24-1 bytes (one
	// to be continued) is far beyond it.
	serveMaxPacket = 1 << 20
	serveMaxOps    = 1 << 16
	// Capability flags beyond those the root package names.
	servePluginAuthLenenc = 0x200000
	serveStatusAutocommit = 2
)

// Column types and flags of the result sets.
const (
	serveTypeLongLong  = 0x08
	serveTypeVarString = 0xfd
	serveBinaryCharset = 63
	serveUTF8MB4       = 45
)

var errServePacket = errors.New("mysql: malformed packet")

type serveSession struct {
	s       registry.ServeConn
	caps    uint32
	version string
}

func serveApp(ctx context.Context, s registry.ServeConn) {
	m := &serveSession{s: s, version: s.Upgrade().Greeting}
	if m.version == "" {
		m.version = "8.0.0-starttls-go"
	}
	if !m.login() {
		return
	}
	for i := 0; i < serveMaxOps && ctx.Err() == nil; i++ {
		_, p, err := m.read()
		if err != nil || len(p) == 0 {
			return
		}
		// Every command starts a new sequence: the answer is number 1.
		ok := true
		switch p[0] {
		case 0x01: // COM_QUIT
			return
		case 0x0e: // COM_PING
			ok = m.ok(1)
		case 0x03: // COM_QUERY
			ok = m.query(string(p[1:]))
		default:
			ok = m.err(1, 1047, "08S01", "Unknown command")
		}
		if !ok {
			return
		}
	}
}

// serveResponse is what login needs of a HandshakeResponse41.
type serveResponse struct {
	caps   uint32
	user   string
	auth   []byte
	plugin string
}

func serveParseResponse(p []byte) (serveResponse, error) {
	if len(p) < 32 {
		return serveResponse{}, errServePacket
	}
	r := serveResponse{caps: binary.LittleEndian.Uint32(p)}
	if r.caps&ClientProtocol41 == 0 {
		return serveResponse{}, errServePacket
	}
	rest := p[32:]
	i := bytes.IndexByte(rest, 0)
	if i < 0 {
		return serveResponse{}, errServePacket
	}
	r.user, rest = string(rest[:i]), rest[i+1:]
	switch {
	case r.caps&servePluginAuthLenenc != 0:
		n, k, err := serveLenencInt(rest)
		if err != nil || n > uint64(len(rest)-k) {
			return serveResponse{}, errServePacket
		}
		r.auth, rest = rest[k:k+int(n)], rest[k+int(n):]
	case r.caps&ClientSecureConnection != 0:
		if len(rest) < 1 || int(rest[0]) > len(rest)-1 {
			return serveResponse{}, errServePacket
		}
		r.auth, rest = rest[1:1+int(rest[0])], rest[1+int(rest[0]):]
	default:
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return serveResponse{}, errServePacket
		}
		r.auth, rest = rest[:j], rest[j+1:]
	}
	if r.caps&ClientConnectWithDB != 0 && len(rest) > 0 {
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return serveResponse{}, errServePacket
		}
		rest = rest[j+1:]
	}
	if r.caps&ClientPluginAuth != 0 && len(rest) > 0 {
		if j := bytes.IndexByte(rest, 0); j >= 0 {
			rest = rest[:j]
		}
		r.plugin = string(rest)
	}
	return r, nil
}

// login reads the HandshakeResponse41 and answers OK or ERR.
func (m *serveSession) login() bool {
	seq, p, err := m.read()
	if err != nil {
		return false
	}
	r, err := serveParseResponse(p)
	if err != nil {
		if len(p) == 32 && binary.LittleEndian.Uint32(p)&ClientSSL != 0 {
			// An SSLRequest inside TLS: there is no second upgrade.
			m.err(seq+1, 1043, "08S01", "Bad handshake: TLS already established")
			return false
		}
		m.err(seq+1, 1043, "08S01", "Bad handshake")
		return false
	}
	m.caps = r.caps
	seq++
	if m.s.Users() == nil {
		// Any user, any password: there is nothing to protect.
		if r.user == "" {
			m.err(seq, 1045, "28000", "Access denied: no user name")
			return false
		}
		return m.ok(seq)
	}
	if !m.s.Secure() {
		m.err(seq, 3159, "HY000", "Connections using insecure transport are prohibited")
		return false
	}
	scramble := m.scramble()
	auth := r.auth
	if r.plugin != "" && r.plugin != NativePassword && scramble != nil {
		// The client began with another method (caching_sha2_password,
		// client_ed25519): ask it to switch (AuthSwitchRequest).
		sw := append([]byte{0xfe}, NativePassword...)
		sw = append(sw, 0)
		sw = append(append(sw, scramble...), 0)
		if !m.write(seq, sw) {
			return false
		}
		var q byte
		if q, auth, err = m.read(); err != nil || q != seq+1 {
			return false
		}
		seq += 2
	}
	pass, known := m.s.Users()[r.user]
	if !known || scramble == nil || !serveNativePasswordOK(scramble, pass, auth) {
		using := "NO"
		if len(auth) > 0 {
			using = "YES"
		}
		m.err(seq, 1045, "28000", fmt.Sprintf("Access denied for user '%s' (using password: %s)", r.user, using))
		return false
	}
	return m.ok(seq)
}

// scramble is the nonce of the plaintext handshake, nil when unknown (a
// connection not set up by the server half).
func (m *serveSession) scramble() []byte {
	// The server half announced it as "AUTH-DATA <hex>".
	for _, e := range m.s.Upgrade().CapabilitiesBefore {
		f := strings.Fields(e)
		if len(f) < 2 || !strings.EqualFold(f[0], "AUTH-DATA") {
			continue
		}
		b, err := hex.DecodeString(f[1])
		if err != nil || len(b) != 20 {
			return nil
		}
		return b
	}
	return nil
}

// serveNativePasswordOK checks a mysql_native_password token:
// SHA1(pass) XOR SHA1(scramble + SHA1(SHA1(pass))); an empty password
// sends an empty token.
func serveNativePasswordOK(scramble []byte, pass string, token []byte) bool {
	if pass == "" {
		return len(token) == 0
	}
	return subtle.ConstantTimeCompare(serveNativePassword(scramble, pass), token) == 1
}

// serveNativePassword computes the mysql_native_password token for pass and
// the server's 20-byte scramble, as a client sends it.
func serveNativePassword(scramble []byte, pass string) []byte {
	h1 := sha1.Sum([]byte(pass))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(scramble)
	h.Write(h2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}

// query answers one COM_QUERY.
func (m *serveSession) query(q string) bool {
	q = strings.ToLower(strings.Join(strings.Fields(strings.TrimRight(strings.TrimSpace(q), "; \t\r\n")), " "))
	arg, isSelect := strings.CutPrefix(q, "select ")
	if isSelect {
		if n, err := strconv.ParseInt(arg, 10, 64); err == nil {
			return m.result(arg, serveTypeLongLong, strconv.FormatInt(n, 10))
		}
		switch arg {
		case "@@version", "version()":
			return m.result(arg, serveTypeVarString, m.version)
		case "@@version_comment limit 1", "@@version_comment":
			// The mariadb and mysql clients ask this for their banner.
			return m.result("@@version_comment", serveTypeVarString, "starttls-go serve")
		}
	}
	return m.err(1, 1064, "42000", "starttls serve answers only select <integer>, select @@version and select @@version_comment")
}

// result sends a text result set of one column and one row (with EOF
// packets: CLIENT_DEPRECATE_EOF is not offered).
func (m *serveSession) result(name string, typ byte, value string) bool {
	charset, length, flags := uint16(serveUTF8MB4), uint32(len(value)*4), uint16(0)
	if typ == serveTypeLongLong {
		charset, length, flags = serveBinaryCharset, 20, 0x81 // NOT_NULL | BINARY
	}
	col := serveLenencStr(nil, "def")
	for _, s := range []string{"", "", "", name, ""} { // schema, table, org_table, name, org_name
		col = serveLenencStr(col, s)
	}
	col = append(col, 0x0c)
	col = binary.LittleEndian.AppendUint16(col, charset)
	col = binary.LittleEndian.AppendUint32(col, length)
	col = append(col, typ)
	col = binary.LittleEndian.AppendUint16(col, flags)
	col = append(col, 0, 0, 0) // decimals, filler
	var out []byte
	out = append(out, Packet(1, []byte{1})...)
	out = append(out, Packet(2, col)...)
	out = append(out, Packet(3, serveEOF())...)
	out = append(out, Packet(4, serveLenencStr(nil, value))...)
	out = append(out, Packet(5, serveEOF())...)
	return m.writeRaw(out)
}

func serveEOF() []byte { return []byte{0xfe, 0, 0, serveStatusAutocommit, 0} }

func (m *serveSession) ok(seq byte) bool {
	return m.write(seq, []byte{0, 0, 0, serveStatusAutocommit, 0, 0, 0})
}

func (m *serveSession) err(seq byte, code uint16, state, msg string) bool {
	return m.writeRaw(ErrPacket(seq, code, state, msg, true))
}

func (m *serveSession) write(seq byte, payload []byte) bool {
	return m.writeRaw(Packet(seq, payload))
}

func (m *serveSession) writeRaw(b []byte) bool {
	c := m.s.Conn()
	_ = c.SetWriteDeadline(time.Now().Add(m.s.IdleTimeout()))
	_, err := c.Write(b)
	return err == nil
}

// read reads one packet of at most serveMaxPacket bytes.
func (m *serveSession) read() (byte, []byte, error) {
	c := m.s.Conn()
	_ = c.SetReadDeadline(time.Now().Add(m.s.IdleTimeout()))
	seq, p, err := ReadPacket(func(b []byte) error { _, err := io.ReadFull(c, b); return err }, serveMaxPacket)
	if errors.Is(err, wire.ErrTooMuchData) {
		m.err(seq+1, 1153, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes")
		return 0, nil, errServePacket
	}
	if err != nil {
		return 0, nil, err
	}
	return seq, p, nil
}

// serveLenencInt decodes a length-encoded integer; it returns the value and
// the number of bytes it took.
func serveLenencInt(b []byte) (uint64, int, error) {
	if len(b) == 0 {
		return 0, 0, errServePacket
	}
	k := 0
	switch b[0] {
	case 0xfc:
		k = 2
	case 0xfd:
		k = 3
	case 0xfe:
		k = 8
	case 0xfb, 0xff:
		return 0, 0, errServePacket
	default:
		return uint64(b[0]), 1, nil
	}
	if len(b) < 1+k {
		return 0, 0, errServePacket
	}
	var v uint64
	for i := k; i >= 1; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, 1 + k, nil
}

func serveLenencStr(out []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 0xfb:
		out = append(out, byte(n))
	case n < 1<<16:
		out = append(out, 0xfc, byte(n), byte(n>>8))
	default:
		out = append(out, 0xfd, byte(n), byte(n>>8), byte(n>>16))
	}
	return append(out, s...)
}
