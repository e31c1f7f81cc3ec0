package ldap

import (
	"errors"
	"fmt"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// LDAP (RFC 4511; StartTLS extended operation §4.14, RFC 4513 §3) and ldaps.
//
// LDAP is a BER protocol: every message is an LDAPMessage SEQUENCE with a
// messageID and one protocolOp. The client speaks first (there is no
// greeting and no capability list before the request), so STARTTLS is
// taken as offered and the server's answer to the extended request decides.
// Messages are read with a bounded BER reader: the tag and length come
// first, so that nothing is allocated or waited for beyond the limit.

// clientRead reads and decodes one message from the server.
func clientRead(s dialog.Client) (*Message, error) {
	read, failed := clientReadFull(s)
	raw, err := ReadMessage(read, s.Config().MaxLineLength)
	if err != nil {
		return nil, clientErr(s, err, raw, *failed)
	}
	m, err := ParseMessage(raw)
	if err != nil {
		return nil, s.Fail(err, dialog.Quote(raw))
	}
	s.Received(m.String())
	return m, nil
}

// clientReadFull is ReadFull for ReadMessage, for both halves, noting whether a read
// failed: its error is then already the session's.
func clientReadFull(s interface{ ReadFull([]byte) error }) (read func([]byte) error, failed *bool) {
	failed = new(bool)
	return func(p []byte) error {
		err := s.ReadFull(p)
		*failed = err != nil
		return err
	}, failed
}

// clientErr wraps a reading error, keeping the bytes seen as evidence;
// readFailed: the error is the session's already.
func clientErr(s dialog.Client, err error, raw []byte, readFailed bool) error {
	if readFailed {
		return err
	}
	if errors.Is(err, dialog.ErrProtocol) || errors.Is(err, dialog.ErrTooMuchData) {
		return s.Fail(err, dialog.Quote(raw))
	}
	return s.IOErr(err)
}

// clientHalf is LDAP's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		// LDAP has no greeting and no way to list extensions before
		// binding short of a RootDSE search; the answer to the request
		// is what counts, so the upgrade is taken as offered.
		Greet: dialog.SpeakFirst,
		Upgrade: func(s dialog.Client) error {
			id := s.NextTag()
			if err := s.SendRaw(EncodeExtendedRequest(id, StartTLSOID),
				fmt.Sprintf("ExtendedRequest messageID=%d name=%s (StartTLS)", id, StartTLSOID)); err != nil {
				return err
			}
			m, err := clientRead(s)
			if err != nil {
				return err
			}
			if IsNotice(m) {
				return s.Failf(dialog.ErrClosed, m.Diagnostic, "notice of disconnection: %s", ResultCodeName(m.ResultCode))
			}
			if m.ID != id {
				return s.Failf(dialog.ErrProtocol, m.String(), "answer has messageID %d, the request had %d", m.ID, id)
			}
			if m.Op != ExtendedResponse {
				return s.Failf(dialog.ErrProtocol, m.String(), "answer to the StartTLS request is a %s, not an ExtendedResponse", m.OpName())
			}
			if m.ResultCode != Success {
				reply := m.Diagnostic
				if reply == "" {
					reply = m.String()
				}
				return s.Failf(dialog.ErrRefused, reply, "resultCode %d (%s)", m.ResultCode, ResultCodeName(m.ResultCode))
			}
			if m.Name != "" && m.Name != StartTLSOID {
				return s.Failf(dialog.ErrProtocol, m.String(), "success with responseName %q, not the StartTLS OID", m.Name)
			}
			if m.HasValue {
				return s.Failf(dialog.ErrProtocol, m.String(), "StartTLS response with a responseValue")
			}
			return nil
		},
		Quit: func(s dialog.Client) error {
			// UnbindRequest has no response (RFC 4511 §4.3).
			id := s.NextTag()
			return s.SendRaw(EncodeUnbind(id), fmt.Sprintf("UnbindRequest messageID=%d", id))
		},
	}
}
