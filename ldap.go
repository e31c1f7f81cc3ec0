package starttls

import (
	"errors"
	"fmt"

	"github.com/starttls-go/starttls/internal/proto/ldap"
)

// LDAP (RFC 4511; StartTLS extended operation §4.14, RFC 4513 §3) and ldaps.
//
// LDAP is a BER protocol: every message is an LDAPMessage SEQUENCE with a
// messageID and one protocolOp. The client speaks first (there is no
// greeting and no capability list before the request), so STARTTLS is
// taken as offered and the server's answer to the extended request decides.
// Messages are read with a bounded BER reader: the tag and length come
// first, so that nothing is allocated or waited for beyond the limit.

// readLDAP reads and decodes one message from the server.
func (s *clientSession) readLDAP() (*ldap.Message, error) {
	raw, err := ldap.ReadMessage(s.readFull, s.cfg.MaxLineLength)
	if err != nil {
		return nil, s.ldapErr(err, raw)
	}
	m, err := ldap.ParseMessage(raw)
	if err != nil {
		return nil, s.fail(err, quote(raw))
	}
	s.record(false, m.String())
	return m, nil
}

// ldapErr wraps a reading error, keeping the bytes seen as evidence.
func (s *clientSession) ldapErr(err error, raw []byte) error {
	var pe *ProtocolError
	if errors.As(err, &pe) {
		return err
	}
	if errors.Is(err, ErrProtocol) || errors.Is(err, ErrTooMuchData) {
		return s.fail(err, quote(raw))
	}
	return s.ioErr(err)
}

func ldapClient() *clientHalf {
	return &clientHalf{
		greet: func(s *clientSession) error {
			// LDAP has no greeting and no way to list extensions before
			// binding short of a RootDSE search; the answer to the request
			// is what counts, so the upgrade is taken as offered.
			s.offered = true
			return nil
		},
		upgrade: func(s *clientSession) error {
			s.tag++
			id := s.tag
			if err := s.sendRaw(ldap.EncodeExtendedRequest(id, ldap.StartTLSOID),
				fmt.Sprintf("ExtendedRequest messageID=%d name=%s (StartTLS)", id, ldap.StartTLSOID)); err != nil {
				return err
			}
			m, err := s.readLDAP()
			if err != nil {
				return err
			}
			if ldap.IsNotice(m) {
				return s.failf(ErrClosed, m.Diagnostic, "notice of disconnection: %s", ldap.ResultCodeName(m.ResultCode))
			}
			if m.ID != id {
				return s.failf(ErrProtocol, m.String(), "answer has messageID %d, the request had %d", m.ID, id)
			}
			if m.Op != ldap.ExtendedResponse {
				return s.failf(ErrProtocol, m.String(), "answer to the StartTLS request is a %s, not an ExtendedResponse", m.OpName())
			}
			if m.ResultCode != ldap.Success {
				reply := m.Diagnostic
				if reply == "" {
					reply = m.String()
				}
				return s.failf(ErrRefused, reply, "resultCode %d (%s)", m.ResultCode, ldap.ResultCodeName(m.ResultCode))
			}
			if m.Name != "" && m.Name != ldap.StartTLSOID {
				return s.failf(ErrProtocol, m.String(), "success with responseName %q, not the StartTLS OID", m.Name)
			}
			if m.HasValue {
				return s.failf(ErrProtocol, m.String(), "StartTLS response with a responseValue")
			}
			return nil
		},
		quit: func(s *clientSession) error {
			// UnbindRequest has no response (RFC 4511 §4.3).
			s.tag++
			return s.sendRaw(ldap.EncodeUnbind(s.tag), fmt.Sprintf("UnbindRequest messageID=%d", s.tag))
		},
	}
}

// ldapServerState is the per-session state of the server half.
type ldapServerState struct {
	startTLSID int // messageID of the StartTLS request
}

func ldapServer() *serverHalf {
	return &serverHalf{
		serve: ldapServe,
		goAhead: func(s *serverSession) error {
			id := s.state.(*ldapServerState).startTLSID
			m := ldap.EncodeResult(id, ldap.ExtendedResponse, ldap.Success, "", ldap.StartTLSOID)
			return s.sendRaw(m, fmt.Sprintf("ExtendedResponse messageID=%d resultCode=0 (success) name=%s", id, ldap.StartTLSOID))
		},
	}
}

// ldapMaxMessage is the bound of one client message before TLS: the
// dialogue's messages are tiny, so MaxLineLength; under Optional the
// operation handed off to the application may be larger and only the
// pre-TLS byte budget applies.
func (s *serverSession) ldapMaxMessage() int {
	if s.cfg.Policy == Optional {
		return s.cfg.MaxPreTLSBytes
	}
	return s.cfg.MaxLineLength
}

// ldapDisconnect sends a Notice of Disconnection, best effort: the session
// is over because the client broke the protocol (RFC 4511 §4.1.1).
func (s *serverSession) ldapDisconnect(diag string) {
	m := ldap.EncodeResult(0, ldap.ExtendedResponse, ldap.ProtocolError, diag, ldap.NoticeOfDisconnectionOID)
	_ = s.sendRaw(m, "ExtendedResponse messageID=0 (notice of disconnection) resultCode=2 (protocolError)")
}

func ldapServe(s *serverSession) (action, error) {
	st := &ldapServerState{}
	s.state = st
	for i := 0; i < s.cfg.MaxCommands; i++ {
		raw, err := ldap.ReadMessage(s.readFull, s.ldapMaxMessage())
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) || !(errors.Is(err, ErrProtocol) || errors.Is(err, ErrTooMuchData)) {
				return 0, s.ioErr(err)
			}
			s.ldapDisconnect("malformed LDAPMessage")
			return 0, s.fail(err, quote(raw))
		}
		m, err := ldap.ParseMessage(raw)
		if err != nil {
			s.ldapDisconnect("malformed LDAPMessage")
			return 0, s.fail(err, quote(raw))
		}
		s.record(false, m.String())
		if m.ID == 0 {
			s.ldapDisconnect("messageID 0 in a request")
			return 0, s.fail(fmt.Errorf("%w: request with messageID 0", ErrProtocol), m.String())
		}
		switch m.Op {
		case ldap.ExtendedRequest:
			if m.Name == ldap.StartTLSOID {
				if m.HasValue {
					// RFC 4511 §4.14.1: the requestValue is absent.
					if err := s.ldapAnswer(m, ldap.ProtocolError, "StartTLS takes no requestValue"); err != nil {
						return 0, err
					}
					continue
				}
				st.startTLSID = m.ID
				return actStartTLS, nil
			}
		case ldap.UnbindRequest:
			return actQuit, nil
		case ldap.AbandonRequest:
			// No response; nothing is outstanding before TLS.
			continue
		}
		if _, isRequest := ldap.ResponseTo(m.Op); !isRequest {
			s.ldapDisconnect(m.OpName() + " from a client")
			return 0, s.fail(fmt.Errorf("%w: client sent a %s", ErrProtocol, m.OpName()), m.String())
		}
		if s.cfg.Policy == Optional {
			s.c.pending = raw
			return actHandoff, nil
		}
		// RFC 4513 §3: a server that requires TLS answers
		// confidentialityRequired and the session stays usable.
		if err := s.ldapAnswer(m, ldap.ConfidentialityRequired, "StartTLS required"); err != nil {
			return 0, err
		}
	}
	return 0, s.fail(fmt.Errorf("%w: more than %d messages before TLS", ErrProtocol, s.cfg.MaxCommands), "")
}

// ldapAnswer sends the response op matching the request m with a result.
func (s *serverSession) ldapAnswer(m *ldap.Message, code int, diag string) error {
	op, _ := ldap.ResponseTo(m.Op)
	b := ldap.EncodeResult(m.ID, op, code, diag, "")
	return s.sendRaw(b, fmt.Sprintf("%s messageID=%d resultCode=%d (%s) diagnostic=%q",
		ldap.OpName(op), m.ID, code, ldap.ResultCodeName(code), diag))
}
