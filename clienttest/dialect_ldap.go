package clienttest

import (
	"bufio"
	"fmt"
	"io"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/ldap"
)

// LDAP: the StartTLS extended request (RFC 4511 §4.14) answered by an
// ExtendedResponse; success is the go-ahead.

func init() {
	register(starttls.LDAP, &dialect{
		pers: &personality{leaks: []string{"BindRequest", "SearchRequest", "AddRequest", "ModifyRequest",
			"DelRequest", "ModDNRequest", "CompareRequest"}},
		open: func(bool) handler { return &ldapHandler{} },
		refusals: map[string]string{
			"unavailable": "the StartTLS request is answered with resultCode 52 (unavailable)",
		},
		stripSummary: "the StartTLS request is answered with resultCode 2 (protocolError), as by a server without StartTLS",
	})
}

type ldapHandler struct{}

func (ldapHandler) frame(r *bufio.Reader) (msg, error) {
	raw, err := readBER(r, maxPacket)
	if err != nil {
		return msg{}, err
	}
	m, err := ldap.ParseMessage(raw)
	if err != nil {
		return msg{text: "malformed LDAPMessage: " + err.Error(), raw: raw}, nil
	}
	text := m.String()
	if m.Op == ldap.BindRequest {
		text += bindDetail(raw)
	}
	return msg{text: text, raw: raw, id: m.ID, op: m.Op, name: m.Name}, nil
}

// readBER reads one BER element with a definite length of at most limit.
func readBER(r *bufio.Reader, limit int) ([]byte, error) {
	hdr, err := r.Peek(2)
	if err != nil {
		return nil, err
	}
	if hdr[0] != 0x30 {
		return nil, fmt.Errorf("message starts with 0x%02x, not a SEQUENCE", hdr[0])
	}
	n, head := int(hdr[1]), 2
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 3 {
			return nil, fmt.Errorf("length with %d octets", k)
		}
		b, err := r.Peek(2 + k)
		if err != nil {
			return nil, err
		}
		n = 0
		for _, c := range b[2:] {
			n = n<<8 | int(c)
		}
		head += k
	}
	if n > limit {
		return nil, fmt.Errorf("message of %d bytes", n)
	}
	raw := make([]byte, head+n)
	_, err = io.ReadFull(r, raw)
	return raw, err
}

// bindDetail describes a BindRequest's name and authentication choice:
// the evidence that credentials went out.
func bindDetail(raw []byte) string {
	s := cryptobyte.String(raw)
	var env, op, name cryptobyte.String
	var id, version int64
	var auth cbasn1.Tag
	var cred cryptobyte.String
	if !s.ReadASN1(&env, cbasn1.SEQUENCE) || !env.ReadASN1Integer(&id) ||
		!env.ReadASN1(&op, cbasn1.Tag(0x40|ldap.BindRequest).Constructed()) || !op.ReadASN1Integer(&version) ||
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

func (ldapHandler) greeting() []byte { return nil }
func (ldapHandler) isUpgrade(m msg) bool {
	return m.op == ldap.ExtendedRequest && m.name == ldap.StartTLSOID
}
func (ldapHandler) goAhead(m msg) []byte {
	return ldap.EncodeResult(m.id, ldap.ExtendedResponse, 0, "", ldap.StartTLSOID)
}

// inject answers the bind and the search a client sends next inside TLS.
func (ldapHandler) inject(m msg) []byte {
	return append(ldap.EncodeResult(m.id+1, ldap.BindResponse, 0, "", ""), ldap.EncodeResult(m.id+2, ldap.SearchResDone, 0, "", "")...)
}
func (ldapHandler) tlsStarted(msg) []byte { return nil }

func (ldapHandler) refuse(key string, m msg) ([]byte, bool) {
	if key == "unavailable" {
		return ldap.EncodeResult(m.id, ldap.ExtendedResponse, 52, "TLS not available", ldap.StartTLSOID), false
	}
	return ldap.EncodeResult(m.id, ldap.ExtendedResponse, 2, "unsupported extended operation", ""), false
}

func (ldapHandler) handle(m msg, _ bool) ([]byte, bool) {
	switch m.op {
	case ldap.BindRequest:
		return ldap.EncodeResult(m.id, ldap.BindResponse, 0, "", ""), false
	case ldap.SearchRequest:
		return ldap.EncodeResult(m.id, ldap.SearchResDone, 0, "", ""), false
	case ldap.UnbindRequest:
		return nil, true
	case ldap.ExtendedRequest:
		return ldap.EncodeResult(m.id, ldap.ExtendedResponse, 2, "unsupported extended operation", ""), false
	case 16: // AbandonRequest has no response
		return nil, false
	}
	return nil, true
}
