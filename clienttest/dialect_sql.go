package clienttest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/mysql"
	"github.com/starttls-go/starttls/internal/proto/postgres"
)

// PostgreSQL: SSLRequest → 'S' (go ahead) or 'N'. MySQL: the server's
// handshake lists CLIENT_SSL or not, the client answers with SSLRequest
// and starts TLS without waiting for anything.

// Bounds of one client packet: a startup packet is at most 10000 bytes
// (the server's MAX_STARTUP_PACKET_LENGTH); nothing a client sends while
// logging in comes near 64 KiB.
const (
	pgMaxStartup = 10000
	maxPacket    = 64 << 10
)

func init() {
	register(starttls.Postgres, &dialect{
		pers: &personality{leaks: []string{"StartupMessage", "PasswordMessage", "Query"}},
		open: func(bool) handler { return &pgHandler{} },
		refusals: map[string]string{
			"error": "SSLRequest is answered with an ErrorResponse, as servers before 7.0 did",
		},
		stripSummary: "SSLRequest is answered with 'N' (no TLS), as an attacker on the path can",
	})
	register(starttls.MySQL, &dialect{
		pers:         &personality{leaks: []string{"HandshakeResponse", "COM_QUERY"}},
		open:         func(offer bool) handler { return &mysqlHandler{offer: offer, first: true} },
		stripSummary: "the server's handshake does not list CLIENT_SSL (stripped by an attacker)",
		noGoAhead:    true,
	})
}

// pgHandler frames PostgreSQL messages: untyped startup packets until a
// StartupMessage, typed messages after it.
type pgHandler struct{ typed bool }

func (h *pgHandler) frame(r *bufio.Reader) (msg, error) {
	if !h.typed {
		pkt, err := readLenPrefixed(r, 8, pgMaxStartup)
		if err != nil {
			return msg{}, err
		}
		st, err := postgres.ParseStartup(pkt)
		if err != nil {
			return msg{text: "malformed startup packet: " + err.Error(), raw: pkt}, nil
		}
		switch st.Code {
		case 80877103:
			return msg{text: "SSLRequest", raw: pkt}, nil
		case 80877104:
			return msg{text: "GSSENCRequest", raw: pkt}, nil
		case 80877102:
			return msg{text: "CancelRequest", raw: pkt}, nil
		}
		h.typed = true
		return msg{text: fmt.Sprintf("StartupMessage user=%s database=%s", st.Params["user"], st.Params["database"]), raw: pkt}, nil
	}
	t, err := r.ReadByte()
	if err != nil {
		return msg{}, err
	}
	body, err := readLenPrefixed(r, 4, maxPacket)
	if err != nil {
		return msg{}, err
	}
	names := map[byte]string{'p': "PasswordMessage", 'Q': "Query", 'X': "Terminate", 'P': "Parse"}
	name := names[t]
	if name == "" {
		name = fmt.Sprintf("Message(%q)", t)
	}
	return msg{text: fmt.Sprintf("%s (%d bytes)", name, len(body)-4), raw: append([]byte{t}, body...)}, nil
}

// readLenPrefixed reads a packet whose first four bytes are its length
// (big-endian, counting themselves), within [least, most].
func readLenPrefixed(r *bufio.Reader, least, most int) ([]byte, error) {
	hdr, err := r.Peek(4)
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n < least || n > most {
		return nil, fmt.Errorf("packet length %d outside [%d, %d]", n, least, most)
	}
	pkt := make([]byte, n)
	_, err = io.ReadFull(r, pkt)
	return pkt, err
}

func (h *pgHandler) greeting() []byte      { return nil }
func (h *pgHandler) isUpgrade(m msg) bool  { return m.text == "SSLRequest" }
func (h *pgHandler) goAhead(msg) []byte    { return []byte("S") }
func (h *pgHandler) inject(msg) []byte     { return pgAuthCleartext() }
func (h *pgHandler) tlsStarted(msg) []byte { h.typed = false; return nil }

func (h *pgHandler) refuse(key string, _ msg) ([]byte, bool) {
	if key == "error" {
		return postgres.ErrorResponse("FATAL", "08P01", "unsupported frontend protocol 1234.5679"), true
	}
	return []byte("N"), false
}

func (h *pgHandler) handle(m msg, _ bool) ([]byte, bool) {
	switch {
	case m.text == "GSSENCRequest":
		return []byte("N"), false
	case len(m.text) > 14 && m.text[:14] == "StartupMessage":
		// Ask for the password in clear: what a client then sends in
		// plaintext is the leak this server is here to see.
		return pgAuthCleartext(), false
	case len(m.raw) > 0 && m.raw[0] == 'X':
		return nil, true
	case len(m.raw) > 0 && m.raw[0] == 'p':
		return postgres.ErrorResponse("FATAL", "28P01", `password authentication failed for user "user"`), true
	}
	return postgres.ErrorResponse("FATAL", "08P01", "unexpected message"), true
}

// pgAuthCleartext is AuthenticationCleartextPassword.
func pgAuthCleartext() []byte { return []byte{'R', 0, 0, 0, 8, 0, 0, 0, 3} }

// mysqlHandler frames MySQL packets (3-byte little-endian length, sequence id).
type mysqlHandler struct {
	offer bool
	first bool // the next packet is the client's first: SSLRequest or HandshakeResponse
}

func (h *mysqlHandler) frame(r *bufio.Reader) (msg, error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return msg{}, err
	}
	n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
	if n > maxPacket {
		return msg{}, fmt.Errorf("packet of %d bytes", n)
	}
	p := make([]byte, n)
	if _, err := io.ReadFull(r, p); err != nil {
		return msg{}, err
	}
	m := msg{raw: p, seq: hdr[3]}
	if h.first {
		h.first = false
		resp, err := mysql.ParseResponse(p)
		switch {
		case err != nil:
			m.text = fmt.Sprintf("malformed client response (%d bytes): %v", n, err)
		case resp.User == "" && resp.Capabilities&mysql.ClientSSL != 0:
			m.text = fmt.Sprintf("SSLRequest caps 0x%08x", resp.Capabilities)
		default:
			m.text = fmt.Sprintf("HandshakeResponse user=%s (%d bytes)", resp.User, n)
		}
		return m, nil
	}
	switch {
	case n > 0 && p[0] == 0x01:
		m.text = "COM_QUIT"
	case n > 0 && p[0] == 0x03:
		m.text = fmt.Sprintf("COM_QUERY (%d bytes)", n-1)
	default:
		m.text = fmt.Sprintf("packet (%d bytes)", n)
	}
	return m, nil
}

// mysqlScramble is the authentication challenge: fixed, the server never
// checks an answer.
var mysqlScramble = []byte("clienttest-scramble!")

func (h *mysqlHandler) greeting() []byte {
	caps := mysql.ClientLongPassword | mysql.ClientFoundRows | mysql.ClientLongFlag |
		mysql.ClientConnectWithDB | mysql.ClientProtocol41 | mysql.ClientTransactions |
		mysql.ClientSecureConnection | mysql.ClientMultiStatements | mysql.ClientMultiResults |
		mysql.ClientPluginAuth
	if h.offer {
		caps |= mysql.ClientSSL
	}
	p := append([]byte{10}, "8.0.0-clienttest\x00"...)
	p = binary.LittleEndian.AppendUint32(p, 7)
	p = append(append(p, mysqlScramble[:8]...), 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, 45)
	p = binary.LittleEndian.AppendUint16(p, 2)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, byte(len(mysqlScramble)+1))
	p = append(p, make([]byte, 10)...)
	p = append(append(p, mysqlScramble[8:]...), 0)
	p = append(p, "mysql_native_password\x00"...)
	return mysql.Packet(0, p)
}

func (h *mysqlHandler) isUpgrade(m msg) bool { return len(m.text) > 10 && m.text[:10] == "SSLRequest" }
func (h *mysqlHandler) goAhead(msg) []byte   { return nil }
func (h *mysqlHandler) inject(msg) []byte    { return nil }
func (h *mysqlHandler) tlsStarted(msg) []byte {
	h.first = true
	return nil
}

func (h *mysqlHandler) refuse(_ string, m msg) ([]byte, bool) {
	return mysql.ErrPacket(m.seq+1, 1043, "08S01", "Bad handshake", true), true
}

func (h *mysqlHandler) handle(m msg, _ bool) ([]byte, bool) {
	if m.text == "COM_QUIT" {
		return nil, true
	}
	return mysql.ErrPacket(m.seq+1, 1045, "28000", "Access denied for user 'user'@'localhost' (using password: YES)", true), true
}
