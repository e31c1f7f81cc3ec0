package ldap

import (
	"bufio"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// LDAP as clienttest's scenario server speaks it before TLS: the
// StartTLS extended request (RFC 4511 §4.14) answered by an
// ExtendedResponse; success is the go-ahead.
var clientTest = &registry.ClientTest{
	Dialect: &registry.CTDialect{
		Open: func(bool) registry.CTHandler { return ctHandler{} },
		Refusals: map[string]string{
			"unavailable": "the StartTLS request is answered with resultCode 52 (unavailable)",
		},
		StripSummary: "the StartTLS request is answered with resultCode 2 (protocolError), as by a server without StartTLS",
	},
	Leaks: []string{"BindRequest", "SearchRequest", "AddRequest", "ModifyRequest",
		"DelRequest", "ModDNRequest", "CompareRequest"},
	LoginRaw: Encode(2, BindRequest, true, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1OctetString([]byte("cn=user"))
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("secret")) })
	}),
}

// ctHandler answers with a fixed success; a message's Data is its
// *Message (nil when malformed).
type ctHandler struct{}

func ctMessage(m registry.CTMsg) *Message {
	if lm, ok := m.Data.(*Message); ok {
		return lm
	}
	// Malformed: the zero Message, answered as a BindRequest with ID 0.
	return &Message{}
}

func (ctHandler) Frame(r *bufio.Reader) (registry.CTMsg, error) {
	raw, err := ReadMessage(func(b []byte) error { _, err := io.ReadFull(r, b); return err }, registry.CTMaxPacket)
	if err != nil {
		return registry.CTMsg{}, err
	}
	m, err := ParseMessage(raw)
	if err != nil {
		return registry.CTMsg{Text: "malformed LDAPMessage: " + err.Error()}, nil
	}
	text := m.String()
	if m.Op == BindRequest {
		text += ctBindDetail(raw)
	}
	return registry.CTMsg{Text: text, Data: m}, nil
}

// ctBindDetail describes a BindRequest's name and authentication choice:
// the evidence that credentials went out.
func ctBindDetail(raw []byte) string {
	s := cryptobyte.String(raw)
	var env, op, name cryptobyte.String
	var id, version int64
	var auth cbasn1.Tag
	var cred cryptobyte.String
	if !s.ReadASN1(&env, cbasn1.SEQUENCE) || !env.ReadASN1Integer(&id) ||
		!env.ReadASN1(&op, appTag(BindRequest, true)) || !op.ReadASN1Integer(&version) ||
		!op.ReadASN1(&name, cbasn1.OCTET_STRING) || !op.ReadAnyASN1(&cred, &auth) {
		return " (undecodable)"
	}
	switch auth {
	case cbasn1.Tag(0).ContextSpecific():
		return fmt.Sprintf(" name=%q simple password of %d bytes", string(name), len(cred))
	case cbasn1.Tag(3).ContextSpecific().Constructed():
		var mech cryptobyte.String
		cred.ReadASN1(&mech, cbasn1.OCTET_STRING)
		return fmt.Sprintf(" name=%q SASL %s", string(name), string(mech))
	}
	return fmt.Sprintf(" name=%q", string(name))
}

func (ctHandler) Greeting() []byte { return nil }
func (ctHandler) IsUpgrade(m registry.CTMsg) bool {
	lm := ctMessage(m)
	return lm.Op == ExtendedRequest && lm.Name == StartTLSOID
}
func (ctHandler) GoAhead(m registry.CTMsg) []byte {
	return EncodeResult(ctMessage(m).ID, ExtendedResponse, 0, "", StartTLSOID)
}

// Inject answers the bind and the search a client sends next inside TLS.
func (ctHandler) Inject(m registry.CTMsg) []byte {
	id := ctMessage(m).ID
	return append(EncodeResult(id+1, BindResponse, 0, "", ""), EncodeResult(id+2, SearchResDone, 0, "", "")...)
}
func (ctHandler) TLSStarted(registry.CTMsg) []byte { return nil }

func (ctHandler) Refuse(key string, m registry.CTMsg) ([]byte, bool) {
	id := ctMessage(m).ID
	if key == "unavailable" {
		return EncodeResult(id, ExtendedResponse, 52, "TLS not available", StartTLSOID), false
	}
	return EncodeResult(id, ExtendedResponse, 2, "unsupported extended operation", ""), false
}

func (ctHandler) Handle(m registry.CTMsg, _ bool) ([]byte, bool) {
	lm := ctMessage(m)
	switch lm.Op {
	case BindRequest:
		return EncodeResult(lm.ID, BindResponse, 0, "", ""), false
	case SearchRequest:
		return EncodeResult(lm.ID, SearchResDone, 0, "", ""), false
	case UnbindRequest:
		return nil, true
	case ExtendedRequest:
		return EncodeResult(lm.ID, ExtendedResponse, 2, "unsupported extended operation", ""), false
	case AbandonRequest: // no response
		return nil, false
	}
	return nil, true
}
