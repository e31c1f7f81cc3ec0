package starttls

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/wire"
)

// PostgreSQL (frontend/backend protocol 3.0, "SSL Session Encryption"):
// the client sends an SSLRequest packet and the server answers one byte,
// 'S' (go ahead) or 'N' (no TLS). PostgreSQL 17 adds "direct SSL": TLS
// from the first byte on the same port, with ALPN "postgresql".

// PostgreSQL protocol names.
const (
	Postgres       Protocol = "postgres"
	PostgresDirect Protocol = "postgres-direct"
)

func init() {
	register(&spec{name: Postgres, port: 5432, client: postgresClient(), server: postgresServer()})
	// Direct SSL shares the port. It needs ALPN "postgresql" on both sides:
	// PostgreSQL 17 servers reject direct SSL without it.
	registerImplicit(PostgresDirect, Postgres, 5432)
	lookupSpec(PostgresDirect).alpn = []string{PostgresALPN}
}

// PostgresALPN is the ALPN protocol of PostgreSQL direct SSL connections.
const PostgresALPN = "postgresql"

// Codes in the first field of startup-phase packets.
const (
	pgCodeSSLRequest    = 80877103 // 1234<<16 | 5679
	pgCodeGSSENCRequest = 80877104 // 1234<<16 | 5680
	pgCodeCancelRequest = 80877102 // 1234<<16 | 5678
	pgProtocol3         = 3 << 16
)

// Bounds. The server's own limit on a startup packet is 10000 bytes
// (MAX_STARTUP_PACKET_LENGTH); an ErrorResponse during SSL negotiation is a
// short message.
const (
	pgMaxStartupPacket = 10000
	pgMaxErrorResponse = 4096
)

// pgSSLRequest is the 8-byte SSLRequest packet.
var pgSSLRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

func postgresClient() *clientHalf {
	return &clientHalf{
		// The client speaks first: there is no greeting and nothing to ask.
		// SSLRequest is always possible; the server's answer says whether
		// TLS is available.
		greet: func(s *clientSession) error {
			s.offered = true
			return nil
		},
		upgrade: func(s *clientSession) error {
			if err := s.sendRaw(pgSSLRequest, "SSLRequest"); err != nil {
				return err
			}
			var b [1]byte
			// Exactly one byte: whatever else the reader buffered along with
			// an 'S' is response injection (CVE-2021-23222), caught by the
			// generic check after upgrade returns.
			if err := s.readFull(b[:]); err != nil {
				return err
			}
			switch b[0] {
			case 'S':
				s.record(false, "S")
				return nil
			case 'N':
				s.record(false, "N")
				return s.failf(ErrRefused, "N", "server does not support SSL")
			case 'E':
				msg := s.pgReadError()
				s.record(false, "E "+msg)
				return s.failf(ErrRefused, msg, "server answered SSLRequest with an error")
			}
			return s.failf(ErrProtocol, quote(b[:]), "unexpected answer 0x%02x to SSLRequest", b[0])
		},
	}
}

// pgReadError reads, best effort and bounded, the ErrorResponse whose 'E'
// was just read. An old server may send a protocol-2 error instead (a
// NUL-terminated string). It returns a description for the error. The
// whole message shares the deadline of the phase (no reset per read), so a
// server dripping bytes cannot stretch it.
func (s *clientSession) pgReadError() string {
	var hdr [4]byte
	if err := s.r.ReadFull(hdr[:]); err != nil {
		return "(unreadable error response)"
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n >= 5 && n <= pgMaxErrorResponse {
		body := make([]byte, n-4)
		if err := s.r.ReadFull(body); err != nil {
			return "(truncated error response)"
		}
		f, err := ParsePostgresError(body)
		if err != nil {
			return "(malformed error response)"
		}
		return f.String()
	}
	// Protocol 2: "E" then a C string; the four bytes already read are text.
	msg := append([]byte(nil), hdr[:]...)
	if i := bytes.IndexByte(msg, 0); i >= 0 {
		return wire.Printable(msg[:i])
	}
	var b [1]byte
	for len(msg) < pgMaxErrorResponse {
		if err := s.r.ReadFull(b[:]); err != nil || b[0] == 0 {
			break
		}
		msg = append(msg, b[0])
	}
	return wire.Printable(msg)
}

// PostgresError is a parsed ErrorResponse (or NoticeResponse) body.
type PostgresError struct {
	Severity string // 'S' (localized) or 'V'
	Code     string // 'C', SQLSTATE
	Message  string // 'M'
	Fields   map[byte]string
}

func (e PostgresError) String() string {
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

// ParsePostgresError parses the body of an ErrorResponse (after the type
// byte and the length): fields of a type byte and a C string, ended by a
// zero byte.
func ParsePostgresError(body []byte) (PostgresError, error) {
	e := PostgresError{Fields: map[byte]string{}}
	for {
		if len(body) == 0 {
			return PostgresError{}, fmt.Errorf("%w: error response without terminator", ErrProtocol)
		}
		t := body[0]
		body = body[1:]
		if t == 0 {
			if len(body) != 0 {
				return PostgresError{}, fmt.Errorf("%w: %d bytes after the error response's terminator", ErrProtocol, len(body))
			}
			break
		}
		i := bytes.IndexByte(body, 0)
		if i < 0 {
			return PostgresError{}, fmt.Errorf("%w: unterminated field %q in error response", ErrProtocol, t)
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

// postgresErrorResponse builds an ErrorResponse message.
func postgresErrorResponse(severity, code, msg string) []byte {
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

// PostgresStartup is a parsed startup-phase packet from a client.
type PostgresStartup struct {
	Code   uint32            // SSLRequest, GSSENCRequest, CancelRequest codes or the protocol version
	Params map[string]string // StartupMessage parameters (user, database, ...)
}

// ParsePostgresStartup parses one complete startup-phase packet, length
// included.
func ParsePostgresStartup(pkt []byte) (PostgresStartup, error) {
	if len(pkt) < 8 {
		return PostgresStartup{}, fmt.Errorf("%w: startup packet of %d bytes", ErrProtocol, len(pkt))
	}
	if n := binary.BigEndian.Uint32(pkt); int64(n) != int64(len(pkt)) {
		return PostgresStartup{}, fmt.Errorf("%w: startup packet length %d, have %d bytes", ErrProtocol, n, len(pkt))
	}
	p := PostgresStartup{Code: binary.BigEndian.Uint32(pkt[4:])}
	switch p.Code {
	case pgCodeSSLRequest, pgCodeGSSENCRequest:
		if len(pkt) != 8 {
			return PostgresStartup{}, fmt.Errorf("%w: negotiation request of %d bytes", ErrProtocol, len(pkt))
		}
		return p, nil
	case pgCodeCancelRequest:
		if len(pkt) < 12 {
			return PostgresStartup{}, fmt.Errorf("%w: cancel request of %d bytes", ErrProtocol, len(pkt))
		}
		return p, nil
	}
	if p.Code>>16 != 3 {
		return PostgresStartup{}, fmt.Errorf("%w: unsupported frontend protocol %d.%d", ErrProtocol, p.Code>>16, p.Code&0xffff)
	}
	// Parameters: pairs of C strings, ended by an empty name.
	p.Params = map[string]string{}
	rest := pkt[8:]
	for {
		i := bytes.IndexByte(rest, 0)
		if i < 0 {
			return PostgresStartup{}, fmt.Errorf("%w: unterminated startup parameter", ErrProtocol)
		}
		name := string(rest[:i])
		rest = rest[i+1:]
		if name == "" {
			if len(rest) != 0 {
				return PostgresStartup{}, fmt.Errorf("%w: %d bytes after the startup parameters", ErrProtocol, len(rest))
			}
			return p, nil
		}
		j := bytes.IndexByte(rest, 0)
		if j < 0 {
			return PostgresStartup{}, fmt.Errorf("%w: unterminated value of startup parameter %q", ErrProtocol, name)
		}
		p.Params[name] = string(rest[:j])
		rest = rest[j+1:]
	}
}

func postgresServer() *serverHalf {
	return &serverHalf{
		goAhead: func(s *serverSession) error { return s.sendRaw([]byte{'S'}, "S") },
		serve: func(s *serverSession) (action, error) {
			gss := false
			for i := 0; i < 3; i++ {
				var hdr [4]byte
				if err := s.readFull(hdr[:]); err != nil {
					return 0, err
				}
				n := binary.BigEndian.Uint32(hdr[:])
				if n < 8 || n > pgMaxStartupPacket {
					return 0, s.pgRefuse(ErrProtocol, "08P01", "invalid length of startup packet",
						fmt.Sprintf("startup packet length %d", n))
				}
				pkt := make([]byte, n)
				copy(pkt, hdr[:])
				if err := s.readFull(pkt[4:]); err != nil {
					return 0, err
				}
				st, err := ParsePostgresStartup(pkt)
				if err != nil {
					s.record(false, "invalid startup packet")
					return 0, s.pgRefuse(ErrProtocol, "08P01", "invalid startup packet layout", err.Error())
				}
				switch st.Code {
				case pgCodeSSLRequest:
					s.record(false, "SSLRequest")
					return actStartTLS, nil
				case pgCodeGSSENCRequest:
					s.record(false, "GSSENCRequest")
					if gss {
						return 0, s.pgRefuse(ErrProtocol, "08P01", "GSSENCRequest repeated", "GSSENCRequest repeated")
					}
					gss = true
					if err := s.sendRaw([]byte{'N'}, "N"); err != nil {
						return 0, err
					}
					continue
				case pgCodeCancelRequest:
					s.record(false, "CancelRequest")
				default:
					s.record(false, fmt.Sprintf("StartupMessage %d.%d user=%q database=%q",
						st.Code>>16, st.Code&0xffff, st.Params["user"], st.Params["database"]))
					s.c.ClientName = st.Params["user"]
				}
				if s.cfg.Policy == Optional {
					s.c.pending = pkt
					return actHandoff, nil
				}
				if st.Code == pgCodeCancelRequest {
					// A cancel request has no answer; under Required it is
					// not honoured in plaintext.
					return 0, s.fail(fmt.Errorf("%w: plaintext CancelRequest; SSL required", ErrRefused), "")
				}
				return 0, s.pgRefuse(ErrRefused, "28000", "SSL required", "plaintext StartupMessage; SSL required")
			}
			return 0, s.fail(fmt.Errorf("%w: too many startup packets before TLS", ErrProtocol), "")
		},
	}
}

// pgRefuse sends a FATAL ErrorResponse and returns the error that ends the session.
func (s *serverSession) pgRefuse(cond error, code, msg, detail string) error {
	if err := s.sendRaw(postgresErrorResponse("FATAL", code, msg), "E FATAL "+code+" "+msg); err != nil {
		return err
	}
	return s.fail(fmt.Errorf("%w: %s", cond, detail), "")
}
