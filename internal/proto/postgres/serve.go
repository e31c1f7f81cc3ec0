package postgres

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// PostgreSQL inside TLS (frontend/backend protocol 3.0): the startup
// message, cleartext password authentication against serve's users (safe
// inside TLS; none when serve accepts anyone), the parameters libpq expects, and
// simple queries that a client uses to see it is connected (SELECT 1,
// SELECT version(), SELECT current_user). Everything else is an
// ErrorResponse after which the session goes on, as in a real server.

const (
	// serveMaxStartup is PostgreSQL's own limit for a startup packet.
	serveMaxStartup = 10000
	// serveMaxMessage bounds one message after startup.
	serveMaxMessage = 1 << 20
	serveMaxOps     = 1 << 16
	serveVersion    = "16.0"
)

// Type OIDs of the columns this server returns.
const (
	serveOIDInt4 = 23
	serveOIDInt8 = 20
	serveOIDText = 25
)

type serveSession struct {
	s    registry.ServeConn
	user string
	out  []byte // messages queued for one write
}

func serveApp(ctx context.Context, s registry.ServeConn) {
	pg := &serveSession{s: s}
	if !pg.startup() {
		return
	}
	// After an error in the extended query protocol a server discards
	// messages until Sync (protocol docs, "Extended Query").
	skipToSync := false
	for i := 0; i < serveMaxOps && ctx.Err() == nil; i++ {
		typ, body, err := pg.read()
		if err != nil {
			return
		}
		switch typ {
		case 'X':
			return
		case 'Q':
			q, _, _ := strings.Cut(string(body), "\x00")
			pg.query(q)
			pg.ready()
		case 'S':
			skipToSync = false
			pg.ready()
		case 'H':
			// Flush: everything is written at once anyway.
		default:
			if !skipToSync {
				skipToSync = true
				pg.error("ERROR", "0A000", fmt.Sprintf("message type %q is not supported by starttls serve; use the simple query protocol", typ))
			}
		}
		if !pg.flush() {
			return
		}
	}
}

// startup reads the StartupMessage, authenticates and sends what a
// backend sends before its first ReadyForQuery.
func (pg *serveSession) startup() bool {
	_ = pg.s.Conn().SetReadDeadline(time.Now().Add(pg.s.IdleTimeout()))
	var hdr [4]byte
	if _, err := io.ReadFull(pg.s.Conn(), hdr[:]); err != nil {
		return false
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > serveMaxStartup {
		pg.fatal("08P01", "invalid length of startup packet")
		return false
	}
	pkt := make([]byte, n)
	copy(pkt, hdr[:])
	if _, err := io.ReadFull(pg.s.Conn(), pkt[4:]); err != nil {
		return false
	}
	st, err := ParseStartup(pkt)
	if err != nil {
		pg.fatal("08P01", "invalid startup packet layout")
		return false
	}
	switch st.Code {
	case CodeCancelRequest:
		// Nothing runs long enough here to be cancelled.
		return false
	case CodeSSLRequest, CodeGSSENCRequest:
		// Inside TLS a second SSLRequest is not a negotiation any more; a
		// real server reads it as an unknown protocol version and so fails
		// it (it must never answer 'S' twice).
		pg.fatal("0A000", fmt.Sprintf("unsupported frontend protocol %d.%d: server supports 3.0 to 3.0", st.Code>>16, st.Code&0xffff))
		return false
	}
	pg.user = st.Params["user"]
	if pg.user == "" {
		pg.fatal("28000", "no PostgreSQL user name specified in startup packet")
		return false
	}
	if minor := st.Code & 0xffff; minor != 0 || serveHasPQOptions(st.Params) {
		pg.negotiateVersion(st.Params)
	}
	if pg.s.Users() != nil {
		if !pg.s.Secure() {
			pg.fatal("28000", "SSL required to send a password")
			return false
		}
		if !pg.password() {
			return false
		}
	}
	pg.msg('R', serveBE32(0)) // AuthenticationOk
	params := [][2]string{
		{"server_version", serveVersion}, {"server_encoding", "UTF8"}, {"client_encoding", "UTF8"},
		{"DateStyle", "ISO, MDY"}, {"IntervalStyle", "postgres"}, {"TimeZone", "UTC"},
		{"integer_datetimes", "on"}, {"standard_conforming_strings", "on"}, {"is_superuser", "off"},
		{"session_authorization", pg.user}, {"application_name", st.Params["application_name"]},
	}
	for _, p := range params {
		pg.msg('S', serveCstr(p[0]), serveCstr(p[1]))
	}
	var key [8]byte
	_, _ = rand.Read(key[:])
	key[0] &= 0x7f // a process id is positive
	pg.msg('K', key[:])
	pg.ready()
	return pg.flush()
}

func serveHasPQOptions(params map[string]string) bool {
	for k := range params {
		if strings.HasPrefix(k, "_pq_.") {
			return true
		}
	}
	return false
}

// negotiateVersion answers a client asking for a newer minor version or
// protocol options with what this server speaks: 3.0, no options.
func (pg *serveSession) negotiateVersion(params map[string]string) {
	var opts [][]byte
	for k := range params {
		if strings.HasPrefix(k, "_pq_.") {
			opts = append(opts, serveCstr(k))
		}
	}
	pg.msg('v', append([][]byte{serveBE32(0x00030000), serveBE32(uint32(len(opts)))}, opts...)...)
}

// password asks for a cleartext password (TLS protects it) and checks it.
func (pg *serveSession) password() bool {
	pg.msg('R', serveBE32(3)) // AuthenticationCleartextPassword
	if !pg.flush() {
		return false
	}
	typ, body, err := pg.read()
	if err != nil {
		return false
	}
	pass, _, _ := strings.Cut(string(body), "\x00")
	if typ != 'p' || !pg.s.CheckUser(pg.user, pass) {
		pg.fatal("28P01", fmt.Sprintf("password authentication failed for user %q", pg.user))
		return false
	}
	return true
}

// query answers one simple Query.
func (pg *serveSession) query(q string) {
	q = strings.TrimSpace(q)
	q = strings.TrimSpace(strings.TrimRight(q, "; \t\r\n"))
	if q == "" {
		pg.msg('I') // EmptyQueryResponse
		return
	}
	if strings.Contains(q, ";") {
		pg.error("ERROR", "0A000", "starttls serve runs one statement at a time")
		return
	}
	f := strings.Fields(q)
	if len(f) == 2 && strings.EqualFold(f[0], "select") {
		arg := strings.ToLower(f[1])
		if n, err := strconv.ParseInt(arg, 10, 64); err == nil {
			oid := uint32(serveOIDInt4)
			if n != int64(int32(n)) {
				oid = serveOIDInt8
			}
			pg.row("?column?", oid, strconv.FormatInt(n, 10))
			return
		}
		switch arg {
		case "version()":
			pg.row("version", serveOIDText, "PostgreSQL "+serveVersion+" (starttls-go serve)")
			return
		case "current_user", "user", "session_user":
			pg.row(arg, serveOIDText, pg.user)
			return
		}
	}
	pg.error("ERROR", "0A000", "starttls serve answers only SELECT <integer>, SELECT version() and SELECT current_user")
}

// row sends a one-column, one-row result.
func (pg *serveSession) row(name string, oid uint32, value string) {
	size := uint16(0xffff) // -1: variable length
	switch oid {
	case serveOIDInt4:
		size = 4
	case serveOIDInt8:
		size = 8
	}
	field := [][]byte{serveBE16(1), serveCstr(name), serveBE32(0), serveBE16(0), serveBE32(oid), serveBE16(size), serveBE32(0xffffffff), serveBE16(0)}
	pg.msg('T', field...)
	pg.msg('D', serveBE16(1), serveBE32(uint32(len(value))), []byte(value))
	pg.msg('C', serveCstr("SELECT 1"))
}

func (pg *serveSession) ready() { pg.msg('Z', []byte{'I'}) }

// error queues an ErrorResponse.
func (pg *serveSession) error(severity, code, msg string) {
	pg.out = append(pg.out, ErrorResponse(severity, code, msg)...)
}

// fatal sends a FATAL ErrorResponse; the session then ends.
func (pg *serveSession) fatal(code, msg string) {
	pg.error("FATAL", code, msg)
	pg.flush()
}

// msg queues one backend message.
func (pg *serveSession) msg(typ byte, parts ...[]byte) {
	n := 4
	for _, p := range parts {
		n += len(p)
	}
	pg.out = append(pg.out, typ)
	pg.out = binary.BigEndian.AppendUint32(pg.out, uint32(n))
	for _, p := range parts {
		pg.out = append(pg.out, p...)
	}
}

func (pg *serveSession) flush() bool {
	if len(pg.out) == 0 {
		return true
	}
	c := pg.s.Conn()
	_ = c.SetWriteDeadline(time.Now().Add(pg.s.IdleTimeout()))
	_, err := c.Write(pg.out)
	pg.out = pg.out[:0]
	return err == nil
}

// read reads one frontend message of at most serveMaxMessage bytes.
func (pg *serveSession) read() (byte, []byte, error) {
	_ = pg.s.Conn().SetReadDeadline(time.Now().Add(pg.s.IdleTimeout()))
	var hdr [5]byte
	if _, err := io.ReadFull(pg.s.Conn(), hdr[:]); err != nil {
		return 0, nil, err
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > serveMaxMessage {
		pg.fatal("08P01", fmt.Sprintf("invalid message length %d", n))
		return 0, nil, fmt.Errorf("postgres: message length %d", n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(pg.s.Conn(), body); err != nil {
		return 0, nil, err
	}
	return hdr[0], body, nil
}

func serveCstr(s string) []byte { return append([]byte(s), 0) }

func serveBE16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

func serveBE32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }
