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

// LDAP protocolOp numbers this server answers.
const (
	ldapBind        = 0
	ldapBindResp    = 1
	ldapUnbind      = 2
	ldapSearch      = 3
	ldapSearchDone  = 5
	ldapExtended    = 23
	ldapExtendedRes = 24
)

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
	if m.Op == ldapBind {
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
		!env.ReadASN1(&op, cbasn1.Tag(0x40|ldapBind).Constructed()) || !op.ReadASN1Integer(&version) ||
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

// ldapResult encodes a response carrying an LDAPResult (and, when name is
// set, an ExtendedResponse's responseName).
func ldapResult(id, op, code int, diag, name string) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(id))
		b.AddASN1(cbasn1.Tag(0x40|op).Constructed(), func(b *cryptobyte.Builder) {
			b.AddASN1Enum(int64(code))
			b.AddASN1OctetString(nil)
			b.AddASN1OctetString([]byte(diag))
			if name != "" {
				b.AddASN1(cbasn1.Tag(10).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
			}
		})
	})
	return b.BytesOrPanic()
}

func (ldapHandler) greeting() []byte { return nil }
func (ldapHandler) isUpgrade(m msg) bool {
	return m.op == ldapExtended && m.name == ldap.StartTLSOID
}
func (ldapHandler) goAhead(m msg) []byte {
	return ldapResult(m.id, ldapExtendedRes, 0, "", ldap.StartTLSOID)
}

// inject answers the bind and the search a client sends next inside TLS.
func (ldapHandler) inject(m msg) []byte {
	return append(ldapResult(m.id+1, ldapBindResp, 0, "", ""), ldapResult(m.id+2, ldapSearchDone, 0, "", "")...)
}
func (ldapHandler) tlsStarted(msg) []byte { return nil }

func (ldapHandler) refuse(key string, m msg) ([]byte, bool) {
	if key == "unavailable" {
		return ldapResult(m.id, ldapExtendedRes, 52, "TLS not available", ldap.StartTLSOID), false
	}
	return ldapResult(m.id, ldapExtendedRes, 2, "unsupported extended operation", ""), false
}

func (ldapHandler) handle(m msg, _ bool) ([]byte, bool) {
	switch m.op {
	case ldapBind:
		return ldapResult(m.id, ldapBindResp, 0, "", ""), false
	case ldapSearch:
		return ldapResult(m.id, ldapSearchDone, 0, "", ""), false
	case ldapUnbind:
		return nil, true
	case ldapExtended:
		return ldapResult(m.id, ldapExtendedRes, 2, "unsupported extended operation", ""), false
	case 16: // AbandonRequest has no response
		return nil, false
	}
	return nil, true
}
