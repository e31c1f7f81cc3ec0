package postgres

import (
	"bytes"
	"encoding/binary"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

// PostgreSQL (frontend/backend protocol 3.0, "SSL Session Encryption"):
// the client sends an SSLRequest packet and the server answers one byte,
// 'S' (go ahead) or 'N' (no TLS). PostgreSQL 17 adds "direct SSL": TLS
// from the first byte on the same port, with ALPN "postgresql".

// clientHalf is PostgreSQL's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		// The client speaks first: there is no greeting and nothing to ask.
		// SSLRequest is always possible; the server's answer says whether
		// TLS is available.
		Greet: dialog.SpeakFirst,
		Upgrade: func(s dialog.Client) error {
			if err := s.SendRaw(SSLRequest, "SSLRequest"); err != nil {
				return err
			}
			var b [1]byte
			// Exactly one byte: whatever else the reader buffered along with
			// an 'S' is response injection (CVE-2021-23222), caught by the
			// generic check after upgrade returns.
			if err := s.ReadFull(b[:]); err != nil {
				return err
			}
			switch b[0] {
			case 'S':
				s.Received("S")
				return nil
			case 'N':
				s.Received("N")
				return s.Failf(dialog.ErrRefused, "N", "server does not support SSL")
			case 'E':
				msg := clientReadError(s)
				s.Received("E " + msg)
				return s.Failf(dialog.ErrRefused, msg, "server answered SSLRequest with an error")
			}
			return s.Failf(dialog.ErrProtocol, dialog.Quote(b[:]), "unexpected answer 0x%02x to SSLRequest", b[0])
		},
	}
}

// clientReadError reads, best effort and bounded, the ErrorResponse whose 'E'
// was just read. An old server may send a protocol-2 error instead (a
// NUL-terminated string). It returns a description for the error. The
// whole message shares the deadline of the phase (no reset per read), so a
// server dripping bytes cannot stretch it.
func clientReadError(s dialog.Client) string {
	var hdr [4]byte
	if err := s.Reader().ReadFull(hdr[:]); err != nil {
		return "(unreadable error response)"
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n >= 5 && n <= MaxErrorResponse {
		body := make([]byte, n-4)
		if err := s.Reader().ReadFull(body); err != nil {
			return "(truncated error response)"
		}
		f, err := ParseError(body)
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
	for len(msg) < MaxErrorResponse {
		if err := s.Reader().ReadFull(b[:]); err != nil || b[0] == 0 {
			break
		}
		msg = append(msg, b[0])
	}
	return wire.Printable(msg)
}
