package ldap

import (
	"errors"
	"fmt"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverState is the per-session state of the server half.
type serverState struct {
	startTLSID int // messageID of the StartTLS request
}

// serverHalf is LDAP's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		Serve: serverServe,
		GoAhead: func(s dialog.Server) error {
			id := s.State().(*serverState).startTLSID
			m := EncodeResult(id, ExtendedResponse, Success, "", StartTLSOID)
			return s.SendRaw(m, fmt.Sprintf("ExtendedResponse messageID=%d resultCode=0 (success) name=%s", id, StartTLSOID))
		},
	}
}

// serverMaxMessage is the bound of one client message before TLS: the
// dialogue's messages are tiny, so MaxLineLength; under Optional the
// operation handed off to the application may be larger and only the
// pre-TLS byte budget applies.
func serverMaxMessage(s dialog.Server) int {
	if s.Config().Optional {
		return s.Config().MaxPreTLSBytes
	}
	return s.Config().MaxLineLength
}

// serverDisconnect sends a Notice of Disconnection, best effort: the session
// is over because the client broke the protocol (RFC 4511 §4.1.1).
func serverDisconnect(s dialog.Server, diag string) {
	m := EncodeResult(0, ExtendedResponse, ProtocolError, diag, NoticeOfDisconnectionOID)
	_ = s.SendRaw(m, "ExtendedResponse messageID=0 (notice of disconnection) resultCode=2 (protocolError)")
}

func serverServe(s dialog.Server) (dialog.Action, error) {
	st := &serverState{}
	s.SetState(st)
	for i := 0; i < s.Config().MaxCommands; i++ {
		read, failed := clientReadFull(s)
		raw, err := ReadMessage(read, serverMaxMessage(s))
		if err != nil {
			if *failed || !(errors.Is(err, dialog.ErrProtocol) || errors.Is(err, dialog.ErrTooMuchData)) {
				return 0, s.IOErr(err)
			}
			serverDisconnect(s, "malformed LDAPMessage")
			return 0, s.Fail(err, dialog.Quote(raw))
		}
		m, err := ParseMessage(raw)
		if err != nil {
			serverDisconnect(s, "malformed LDAPMessage")
			return 0, s.Fail(err, dialog.Quote(raw))
		}
		s.Record(false, m.String())
		if m.ID == 0 {
			serverDisconnect(s, "messageID 0 in a request")
			return 0, s.Fail(fmt.Errorf("%w: request with messageID 0", dialog.ErrProtocol), m.String())
		}
		switch m.Op {
		case ExtendedRequest:
			if m.Name == StartTLSOID {
				if m.HasValue {
					// RFC 4511 §4.14.1: the requestValue is absent.
					if err := serverAnswer(s, m, ProtocolError, "StartTLS takes no requestValue"); err != nil {
						return 0, err
					}
					continue
				}
				st.startTLSID = m.ID
				return dialog.StartTLS, nil
			}
		case UnbindRequest:
			return dialog.Quit, nil
		case AbandonRequest:
			// No response; nothing is outstanding before TLS.
			continue
		}
		if _, isRequest := ResponseTo(m.Op); !isRequest {
			serverDisconnect(s, m.OpName()+" from a client")
			return 0, s.Fail(fmt.Errorf("%w: client sent a %s", dialog.ErrProtocol, m.OpName()), m.String())
		}
		if s.Config().Optional {
			s.SetPending(raw)
			return dialog.Handoff, nil
		}
		// RFC 4513 §3: a server that requires TLS answers
		// confidentialityRequired and the session stays usable.
		if err := serverAnswer(s, m, ConfidentialityRequired, "StartTLS required"); err != nil {
			return 0, err
		}
	}
	return 0, s.Fail(fmt.Errorf("%w: more than %d messages before TLS", dialog.ErrProtocol, s.Config().MaxCommands), "")
}

// serverAnswer sends the response op matching the request m with a result.
func serverAnswer(s dialog.Server, m *Message, code int, diag string) error {
	op, _ := ResponseTo(m.Op)
	b := EncodeResult(m.ID, op, code, diag, "")
	return s.SendRaw(b, fmt.Sprintf("%s messageID=%d resultCode=%d (%s) diagnostic=%q",
		OpName(op), m.ID, code, ResultCodeName(code), diag))
}
