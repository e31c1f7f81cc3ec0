package ldap

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/wire"
)

// LDAP inside TLS (RFC 4511): a read-only directory whose only entry is the
// root DSE. It answers binds (anonymous, or simple against serve's users),
// the root DSE search, WhoAmI (RFC 4532), refuses a second StartTLS and
// ends on Unbind: enough for ldapsearch and ldapwhoami to do real work.
//
// cryptobyte reads DER only, while OpenLDAP's and Active Directory's
// clients send non-minimal four-octet lengths; so requests are read with
// the codec's BER reader (ber.go), and answers are written with cryptobyte
// (DER is valid BER).

const (
	// serveMaxMessage bounds one request: a bind or search is a few
	// hundred bytes; 64 KiB leaves room for long filters.
	serveMaxMessage = 64 << 10
	// serveMaxOps bounds the requests of one session.
	serveMaxOps = 1 << 14
	// serveWhoAmIOID is the "Who am I?" extended operation (RFC 4532).
	serveWhoAmIOID = "1.3.6.1.4.1.4203.1.11.3"
)

// Result codes answered here beyond those the dialogues name (RFC 4511
// Appendix A).
const (
	serveAuthMethodNotSupported = 7
	serveNoSuchObject           = 32
	serveInvalidCredentials     = 49
	serveUnwillingToPerform     = 53
)

// serveRequest is one decoded LDAPMessage from the client.
type serveRequest struct {
	id   int
	op   int
	body []byte // the protocolOp's contents
}

// serveParse decodes a request's envelope; unlike ParseMessage it keeps
// the protocolOp's contents and leaves unknown operations to the caller.
func serveParse(raw []byte) (serveRequest, error) {
	env, rest, err := berNext(raw)
	if err != nil || env.tag != 0x30 || len(rest) != 0 {
		return serveRequest{}, errBER
	}
	idE, rest, err := berNext(env.body)
	if err != nil || idE.tag != 0x02 {
		return serveRequest{}, errBER
	}
	id, err := berInt(idE, "messageID")
	if err != nil {
		return serveRequest{}, err
	}
	opE, rest, err := berNext(rest)
	if err != nil || opE.tag&0xc0 != 0x40 {
		return serveRequest{}, errBER
	}
	// Controls ([0]) may follow; none is critical to a read-only server
	// that ignores them, so they are skipped.
	if len(rest) > 0 {
		if c, r2, err := berNext(rest); err != nil || c.tag != 0xa0 || len(r2) != 0 {
			return serveRequest{}, errBER
		}
	}
	return serveRequest{id: id, op: int(opE.tag & 0x1f), body: opE.body}, nil
}

// serveState is one LDAP session.
type serveState struct {
	s     registry.ServeConn
	bound string // the DN of the last successful simple bind; "" anonymous
}

func serveApp(ctx context.Context, s registry.ServeConn) {
	st := &serveState{s: s}
	c := s.Conn()
	readFull := func(b []byte) error { _, err := io.ReadFull(c, b); return err }
	for i := 0; i < serveMaxOps && ctx.Err() == nil; i++ {
		_ = c.SetReadDeadline(time.Now().Add(s.IdleTimeout()))
		raw, err := ReadMessage(readFull, serveMaxMessage)
		if err != nil {
			if errors.Is(err, errBER) || errors.Is(err, wire.ErrTooMuchData) {
				st.disconnect("malformed LDAPMessage")
			}
			return
		}
		m, err := serveParse(raw)
		if err != nil || m.id == 0 {
			st.disconnect("malformed LDAPMessage")
			return
		}
		if !st.handle(m) {
			return
		}
	}
}

// handle answers one request and reports whether the session goes on.
func (st *serveState) handle(m serveRequest) bool {
	switch m.op {
	case UnbindRequest:
		return false
	case AbandonRequest:
		// Every operation is answered at once: nothing to abandon.
		return true
	case BindRequest:
		return st.bind(m)
	case SearchRequest:
		return st.search(m)
	case ExtendedRequest:
		return st.extended(m)
	case ModifyRequest, AddRequest, DelRequest, ModDNRequest:
		return st.result(m.id, m.op+1, serveUnwillingToPerform, "read-only directory")
	case CompareRequest:
		return st.result(m.id, m.op+1, serveNoSuchObject, "no such entry")
	}
	st.disconnect(fmt.Sprintf("unexpected protocolOp %d", m.op))
	return false
}

// bind handles simple binds (RFC 4513 §5.1): anonymous, or a name and a
// password checked against serve's users. SASL is not offered.
func (st *serveState) bind(m serveRequest) bool {
	verE, rest, err := berNext(m.body)
	if err != nil || verE.tag != 0x02 {
		return st.result(m.id, BindResponse, ProtocolError, "malformed BindRequest")
	}
	nameE, rest, err := berNext(rest)
	if err != nil || nameE.tag != 0x04 {
		return st.result(m.id, BindResponse, ProtocolError, "malformed BindRequest")
	}
	authE, _, err := berNext(rest)
	if err != nil {
		return st.result(m.id, BindResponse, ProtocolError, "malformed BindRequest")
	}
	if v, err := berInt(verE, "version"); err != nil || v != 3 {
		return st.result(m.id, BindResponse, ProtocolError, "only LDAPv3 is supported")
	}
	// A failed bind leaves the session anonymous (RFC 4511 §4.2.1).
	st.bound = ""
	name, pass := string(nameE.body), string(authE.body)
	switch {
	case authE.tag != 0x80:
		return st.result(m.id, BindResponse, serveAuthMethodNotSupported, "only simple bind is supported")
	case name == "" && pass == "":
		return st.result(m.id, BindResponse, Success, "")
	case pass == "":
		// An unauthenticated bind (name, no password) is a classic way to
		// look authenticated while not being so (RFC 4513 §5.1.2).
		return st.result(m.id, BindResponse, serveUnwillingToPerform, "unauthenticated bind (DN with no password) not allowed")
	case !st.s.Secure():
		return st.result(m.id, BindResponse, ConfidentialityRequired, "StartTLS first")
	case !st.s.CheckUser(serveUserOf(name), pass):
		return st.result(m.id, BindResponse, serveInvalidCredentials, "")
	}
	st.bound = name
	return st.result(m.id, BindResponse, Success, "")
}

// serveUserOf maps a bind name to a user of serve's: the value of the
// first RDN ("cn=user,dc=test", "uid=user,..."), or the name itself.
func serveUserOf(name string) string {
	first, _, _ := strings.Cut(name, ",")
	if _, v, ok := strings.Cut(first, "="); ok {
		return strings.TrimSpace(v)
	}
	return name
}

func (st *serveState) search(m serveRequest) bool {
	var f [8]berElem
	rest := m.body
	for i := range f {
		var err error
		if f[i], rest, err = berNext(rest); err != nil {
			return st.result(m.id, SearchResDone, ProtocolError, "malformed SearchRequest")
		}
	}
	base, scopeE, typesOnlyE, filter, attrsE := f[0], f[1], f[5], f[6], f[7]
	if base.tag != 0x04 || scopeE.tag != 0x0a || attrsE.tag != 0x30 {
		return st.result(m.id, SearchResDone, ProtocolError, "malformed SearchRequest")
	}
	scope, err := berInt(scopeE, "scope")
	if err != nil {
		return st.result(m.id, SearchResDone, ProtocolError, "malformed SearchRequest")
	}
	if len(base.body) != 0 {
		return st.result(m.id, SearchResDone, serveNoSuchObject, "only the root DSE exists")
	}
	if scope != 0 {
		// The root DSE has no children that a one-level or subtree search
		// could return, and is itself excluded from them.
		return st.result(m.id, SearchResDone, Success, "")
	}
	attrs := st.rootDSE()
	if !servePresentMatches(filter, attrs) {
		return st.result(m.id, SearchResDone, Success, "")
	}
	want, err := serveAttrList(attrsE.body)
	if err != nil {
		return st.result(m.id, SearchResDone, ProtocolError, "malformed attribute list")
	}
	typesOnly := len(typesOnlyE.body) == 1 && typesOnlyE.body[0] != 0
	if !st.send(serveEncodeEntry(m.id, attrs, want, typesOnly)) {
		return false
	}
	return st.result(m.id, SearchResDone, Success, "")
}

// serveAttr is one attribute of an entry.
type serveAttr struct {
	name string
	vals []string
}

// rootDSE is the server's root DSE (RFC 4512 §5.1).
func (st *serveState) rootDSE() []serveAttr {
	var dcs []string
	for _, l := range strings.Split(st.s.Hostname(), ".") {
		if l != "" {
			dcs = append(dcs, "dc="+l)
		}
	}
	return []serveAttr{
		{"objectClass", []string{"top"}},
		{"namingContexts", []string{strings.Join(dcs, ",")}},
		{"supportedLDAPVersion", []string{"3"}},
		{"supportedExtension", []string{StartTLSOID, serveWhoAmIOID}},
		{"vendorName", []string{"starttls-go"}},
	}
}

// servePresentMatches evaluates a present filter ("(objectClass=*)", what
// every root DSE search sends) against attrs; other filter types match,
// which is generous but harmless for a single public entry.
func servePresentMatches(filter berElem, attrs []serveAttr) bool {
	if filter.tag != 0x87 {
		return true
	}
	for _, a := range attrs {
		if strings.EqualFold(a.name, string(filter.body)) {
			return true
		}
	}
	return false
}

func serveAttrList(b []byte) ([]string, error) {
	var out []string
	for i := 0; len(b) > 0; i++ {
		if i >= 256 {
			return nil, errBER
		}
		var e berElem
		var err error
		if e, b, err = berNext(b); err != nil || e.tag != 0x04 {
			return nil, errBER
		}
		out = append(out, string(e.body))
	}
	return out, nil
}

// serveSelected reports whether attribute name is returned for the list
// want. The root DSE's attributes are operational, which strictly are only
// returned when named or with "+" (RFC 3673); this server shows them for an
// empty list or "*" too, since whoever reads its root DSE wants to see them.
func serveSelected(name string, want []string) bool {
	if len(want) == 0 {
		return true
	}
	for _, w := range want {
		if w == "*" || w == "+" || strings.EqualFold(w, name) {
			return true
		}
	}
	return false
}

func serveEncodeEntry(id int, attrs []serveAttr, want []string, typesOnly bool) []byte {
	return Encode(id, SearchResEntry, true, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(nil) // objectName: the root DSE is ""
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, a := range attrs {
				if !serveSelected(a.name, want) {
					continue
				}
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1OctetString([]byte(a.name))
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						if typesOnly {
							return
						}
						for _, v := range a.vals {
							b.AddASN1OctetString([]byte(v))
						}
					})
				})
			}
		})
	})
}

func (st *serveState) extended(m serveRequest) bool {
	nameE, rest, err := berNext(m.body)
	if err != nil || nameE.tag != 0x80 {
		return st.result(m.id, ExtendedResponse, ProtocolError, "malformed ExtendedRequest")
	}
	switch string(nameE.body) {
	case StartTLSOID:
		// RFC 4511 §4.14.1: StartTLS while TLS is established is an
		// operationsError; in a plaintext session handed over by the
		// Optional policy the upgrade window has passed, which is the same
		// answer (the server half only upgrades a fresh session).
		diag := "TLS already established"
		if !st.s.Secure() {
			diag = "StartTLS must be the first operation"
		}
		return st.resultNamed(m.id, OperationsError, diag, StartTLSOID)
	case serveWhoAmIOID:
		if len(rest) != 0 {
			return st.result(m.id, ExtendedResponse, ProtocolError, "WhoAmI takes no requestValue")
		}
		authz := ""
		if st.bound != "" {
			authz = "dn:" + st.bound
		}
		return st.send(serveWhoAmI(m.id, authz))
	}
	return st.result(m.id, ExtendedResponse, ProtocolError, "unsupported extended operation")
}

// serveWhoAmI encodes a successful WhoAmI answer (RFC 4532 §2.3): its
// responseValue is the authorization identity, "" when anonymous.
func serveWhoAmI(id int, authz string) []byte {
	return Encode(id, ExtendedResponse, true, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(Success)
		b.AddASN1OctetString(nil)
		b.AddASN1OctetString(nil)
		b.AddASN1(cbasn1.Tag(11).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(authz)) })
	})
}

func (st *serveState) result(id, op, code int, diag string) bool {
	return st.send(EncodeResult(id, op, code, diag, ""))
}

func (st *serveState) resultNamed(id, code int, diag, name string) bool {
	return st.send(EncodeResult(id, ExtendedResponse, code, diag, name))
}

func (st *serveState) send(b []byte) bool {
	c := st.s.Conn()
	_ = c.SetWriteDeadline(time.Now().Add(st.s.IdleTimeout()))
	_, err := c.Write(b)
	return err == nil
}

// disconnect sends a Notice of Disconnection (RFC 4511 §4.4.1) before the
// session is closed for a protocol violation.
func (st *serveState) disconnect(diag string) {
	st.resultNamed(0, ProtocolError, diag, NoticeOfDisconnectionOID)
}
