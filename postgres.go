package starttls

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/starttls-go/starttls/internal/proto/postgres"
	"github.com/starttls-go/starttls/internal/wire"
)

// PostgreSQL (frontend/backend protocol 3.0, "SSL Session Encryption"):
// the client sends an SSLRequest packet and the server answers one byte,
// 'S' (go ahead) or 'N' (no TLS). PostgreSQL 17 adds "direct SSL": TLS
// from the first byte on the same port, with ALPN "postgresql".

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
			if err := s.sendRaw(postgres.SSLRequest, "SSLRequest"); err != nil {
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
	if n >= 5 && n <= postgres.MaxErrorResponse {
		body := make([]byte, n-4)
		if err := s.r.ReadFull(body); err != nil {
			return "(truncated error response)"
		}
		f, err := postgres.ParseError(body)
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
	for len(msg) < postgres.MaxErrorResponse {
		if err := s.r.ReadFull(b[:]); err != nil || b[0] == 0 {
			break
		}
		msg = append(msg, b[0])
	}
	return wire.Printable(msg)
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
				if n < 8 || n > postgres.MaxStartupPacket {
					return 0, s.pgRefuse(ErrProtocol, "08P01", "invalid length of startup packet",
						fmt.Sprintf("startup packet length %d", n))
				}
				pkt := make([]byte, n)
				copy(pkt, hdr[:])
				if err := s.readFull(pkt[4:]); err != nil {
					return 0, err
				}
				st, err := postgres.ParseStartup(pkt)
				if err != nil {
					s.record(false, "invalid startup packet")
					return 0, s.pgRefuse(ErrProtocol, "08P01", "invalid startup packet layout", err.Error())
				}
				switch st.Code {
				case postgres.CodeSSLRequest:
					s.record(false, "SSLRequest")
					return actStartTLS, nil
				case postgres.CodeGSSENCRequest:
					s.record(false, "GSSENCRequest")
					if gss {
						return 0, s.pgRefuse(ErrProtocol, "08P01", "GSSENCRequest repeated", "GSSENCRequest repeated")
					}
					gss = true
					if err := s.sendRaw([]byte{'N'}, "N"); err != nil {
						return 0, err
					}
					continue
				case postgres.CodeCancelRequest:
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
				if st.Code == postgres.CodeCancelRequest {
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
	if err := s.sendRaw(postgres.ErrorResponse("FATAL", code, msg), "E FATAL "+code+" "+msg); err != nil {
		return err
	}
	return s.fail(fmt.Errorf("%w: %s", cond, detail), "")
}
