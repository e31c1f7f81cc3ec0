package postgres

import (
	"encoding/binary"
	"fmt"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is PostgreSQL's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		GoAhead: func(s dialog.Server) error { return s.SendRaw([]byte{'S'}, "S") },
		Serve: func(s dialog.Server) (dialog.Action, error) {
			gss := false
			for i := 0; i < 3; i++ {
				var hdr [4]byte
				if err := s.ReadFull(hdr[:]); err != nil {
					return 0, err
				}
				n := binary.BigEndian.Uint32(hdr[:])
				if n < 8 || n > MaxStartupPacket {
					return 0, serverRefuse(s, dialog.ErrProtocol, "08P01", "invalid length of startup packet",
						fmt.Sprintf("startup packet length %d", n))
				}
				pkt := make([]byte, n)
				copy(pkt, hdr[:])
				if err := s.ReadFull(pkt[4:]); err != nil {
					return 0, err
				}
				st, err := ParseStartup(pkt)
				if err != nil {
					s.Record(false, "invalid startup packet")
					return 0, serverRefuse(s, dialog.ErrProtocol, "08P01", "invalid startup packet layout", err.Error())
				}
				switch st.Code {
				case CodeSSLRequest:
					s.Record(false, "SSLRequest")
					return dialog.StartTLS, nil
				case CodeGSSENCRequest:
					s.Record(false, "GSSENCRequest")
					if gss {
						return 0, serverRefuse(s, dialog.ErrProtocol, "08P01", "GSSENCRequest repeated", "GSSENCRequest repeated")
					}
					gss = true
					if err := s.SendRaw([]byte{'N'}, "N"); err != nil {
						return 0, err
					}
					continue
				case CodeCancelRequest:
					s.Record(false, "CancelRequest")
				default:
					s.Record(false, fmt.Sprintf("StartupMessage %d.%d user=%q database=%q",
						st.Code>>16, st.Code&0xffff, st.Params["user"], st.Params["database"]))
					s.SetClientName(st.Params["user"])
				}
				if s.Config().Optional {
					s.SetPending(pkt)
					return dialog.Handoff, nil
				}
				if st.Code == CodeCancelRequest {
					// A cancel request has no answer; under Required it is
					// not honoured in plaintext.
					return 0, s.Fail(fmt.Errorf("%w: plaintext CancelRequest; SSL required", dialog.ErrRefused), "")
				}
				return 0, serverRefuse(s, dialog.ErrRefused, "28000", "SSL required", "plaintext StartupMessage; SSL required")
			}
			return 0, s.Fail(fmt.Errorf("%w: too many startup packets before TLS", dialog.ErrProtocol), "")
		},
	}
}

// serverRefuse sends a FATAL ErrorResponse and returns the error that ends the session.
func serverRefuse(s dialog.Server, cond error, code, msg, detail string) error {
	if err := s.SendRaw(ErrorResponse("FATAL", code, msg), "E FATAL "+code+" "+msg); err != nil {
		return err
	}
	return s.Fail(fmt.Errorf("%w: %s", cond, detail), "")
}
