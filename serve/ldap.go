package serve

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls/internal/proto/ldap"
)

// LDAP inside TLS (RFC 4511): a read-only directory whose only entry is the
// root DSE. It answers binds (anonymous, or simple against Options.Users),
// the root DSE search, WhoAmI (RFC 4532), refuses a second StartTLS and
// ends on Unbind: enough for ldapsearch and ldapwhoami to do real work.
//
// The root package's BER reader is unexported, and cryptobyte reads DER
// only, while OpenLDAP's and Active Directory's clients send non-minimal
// four-octet lengths; so requests are read with the small BER splitter
// below, and answers are written with cryptobyte (DER is valid BER).

const (
	// ldapMaxMessage bounds one request: a bind or search is a few hundred
	// bytes; 64 KiB leaves room for long filters.
	ldapMaxMessage = 64 << 10
	// ldapMaxOps bounds the requests of one session.
	ldapMaxOps = 1 << 14
	// ldapWhoAmIOID is the "Who am I?" extended operation (RFC 4532).
	ldapWhoAmIOID = "1.3.6.1.4.1.4203.1.11.3"
	ldapNoticeOID = "1.3.6.1.4.1.1466.20036"
)

// protocolOp numbers ([APPLICATION n], RFC 4511 §4.2-4.12).
const (
	opBind        = 0
	opBindResp    = 1
	opUnbind      = 2
	opSearch      = 3
	opSearchEntry = 4
	opSearchDone  = 5
	opModify      = 6
	opAdd         = 8
	opDel         = 10
	opModDN       = 12
	opCompare     = 14
	opAbandon     = 16
	opExtended    = 23
	opExtendedRes = 24
)

// Result codes answered here (RFC 4511 Appendix A).
const (
	ldapSuccess            = 0
	ldapOperationsError    = 1
	ldapProtocolError      = 2
	ldapAuthMethodNotSupp  = 7
	ldapConfidentialityReq = 13
	ldapNoSuchObject       = 32
	ldapInvalidCredentials = 49
	ldapUnwillingToPerform = 53
)

var errBER = errors.New("malformed BER")

// tlv is one BER element: its identifier octet and contents.
type tlv struct {
	tag  byte
	body []byte
}

// berSplit takes the first element off b. Definite lengths of up to four
// octets in any form (minimal or not) are accepted; indefinite lengths,
// forbidden by RFC 4511 §5.1, and high tag numbers are errors.
func berSplit(b []byte) (tlv, []byte, error) {
	if len(b) < 2 || b[0]&0x1f == 0x1f {
		return tlv{}, nil, errBER
	}
	n, off := int(b[1]), 2
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 || len(b) < 2+k {
			return tlv{}, nil, errBER
		}
		n = 0
		for _, c := range b[2 : 2+k] {
			n = n<<8 | int(c)
		}
		off += k
	}
	if n < 0 || n > len(b)-off {
		return tlv{}, nil, errBER
	}
	return tlv{tag: b[0], body: b[off : off+n]}, b[off+n:], nil
}

// berUint decodes a non-negative INTEGER, ENUMERATED or BOOLEAN body below 2^31.
func berUint(body []byte) (int, error) {
	if len(body) == 0 || len(body) > 5 || body[0]&0x80 != 0 || (len(body) == 5 && body[0] != 0) {
		return 0, errBER
	}
	v := 0
	for _, c := range body {
		v = v<<8 | int(c)
	}
	if v > 1<<31-1 {
		return 0, errBER
	}
	return v, nil
}

// readBERMessage reads one SEQUENCE: header first, so that an oversize
// length fails before anything is allocated or waited for.
func readBERMessage(r *bufio.Reader, limit int) ([]byte, error) {
	hdr := make([]byte, 2, 6)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	if hdr[0] != 0x30 {
		return nil, fmt.Errorf("%w: message starts with 0x%02x", errBER, hdr[0])
	}
	n := int(hdr[1])
	if n >= 0x80 {
		k := n & 0x7f
		if k == 0 || k > 4 {
			return nil, fmt.Errorf("%w: length form 0x%02x", errBER, hdr[1])
		}
		hdr = hdr[:2+k]
		if _, err := io.ReadFull(r, hdr[2:]); err != nil {
			return nil, err
		}
		n = 0
		for _, c := range hdr[2:] {
			n = n<<8 | int(c)
		}
	}
	if n < 0 || n > limit {
		return nil, fmt.Errorf("%w: message of %d bytes (limit %d)", errBER, n, limit)
	}
	msg := make([]byte, len(hdr)+n)
	copy(msg, hdr)
	if _, err := io.ReadFull(r, msg[len(hdr):]); err != nil {
		return nil, err
	}
	return msg, nil
}

// ldapRequest is one decoded LDAPMessage from the client.
type ldapRequest struct {
	id   int
	op   int
	body []byte // the protocolOp's contents
}

func parseLDAPRequest(raw []byte) (ldapRequest, error) {
	env, rest, err := berSplit(raw)
	if err != nil || env.tag != 0x30 || len(rest) != 0 {
		return ldapRequest{}, errBER
	}
	idE, rest, err := berSplit(env.body)
	if err != nil || idE.tag != 0x02 {
		return ldapRequest{}, errBER
	}
	id, err := berUint(idE.body)
	if err != nil {
		return ldapRequest{}, err
	}
	opE, rest, err := berSplit(rest)
	if err != nil || opE.tag&0xc0 != 0x40 {
		return ldapRequest{}, errBER
	}
	// Controls ([0]) may follow; none is critical to a read-only server
	// that ignores them, so they are skipped.
	if len(rest) > 0 {
		if c, r2, err := berSplit(rest); err != nil || c.tag != 0xa0 || len(r2) != 0 {
			return ldapRequest{}, errBER
		}
	}
	return ldapRequest{id: id, op: int(opE.tag & 0x1f), body: opE.body}, nil
}

// ldapState is one LDAP session.
type ldapState struct {
	s     *session
	bound string // the DN of the last successful simple bind; "" anonymous
}

func ldapApp(ctx context.Context, s *session) {
	st := &ldapState{s: s}
	for i := 0; i < ldapMaxOps && ctx.Err() == nil; i++ {
		_ = s.c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
		raw, err := readBERMessage(s.br, ldapMaxMessage)
		if err != nil {
			if errors.Is(err, errBER) {
				st.disconnect("malformed LDAPMessage")
			}
			return
		}
		m, err := parseLDAPRequest(raw)
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
func (st *ldapState) handle(m ldapRequest) bool {
	switch m.op {
	case opUnbind:
		return false
	case opAbandon:
		// Every operation is answered at once: nothing to abandon.
		return true
	case opBind:
		return st.bind(m)
	case opSearch:
		return st.search(m)
	case opExtended:
		return st.extended(m)
	case opModify, opAdd, opDel, opModDN:
		return st.result(m.id, m.op+1, ldapUnwillingToPerform, "read-only directory", nil)
	case opCompare:
		return st.result(m.id, m.op+1, ldapNoSuchObject, "no such entry", nil)
	}
	st.disconnect(fmt.Sprintf("unexpected protocolOp %d", m.op))
	return false
}

// bind handles simple binds (RFC 4513 §5.1): anonymous, or a name and a
// password checked against Options.Users. SASL is not offered.
func (st *ldapState) bind(m ldapRequest) bool {
	verE, rest, err := berSplit(m.body)
	if err != nil || verE.tag != 0x02 {
		return st.result(m.id, opBindResp, ldapProtocolError, "malformed BindRequest", nil)
	}
	nameE, rest, err := berSplit(rest)
	if err != nil || nameE.tag != 0x04 {
		return st.result(m.id, opBindResp, ldapProtocolError, "malformed BindRequest", nil)
	}
	authE, _, err := berSplit(rest)
	if err != nil {
		return st.result(m.id, opBindResp, ldapProtocolError, "malformed BindRequest", nil)
	}
	if v, err := berUint(verE.body); err != nil || v != 3 {
		return st.result(m.id, opBindResp, ldapProtocolError, "only LDAPv3 is supported", nil)
	}
	// A failed bind leaves the session anonymous (RFC 4511 §4.2.1).
	st.bound = ""
	name, pass := string(nameE.body), string(authE.body)
	switch {
	case authE.tag != 0x80:
		return st.result(m.id, opBindResp, ldapAuthMethodNotSupp, "only simple bind is supported", nil)
	case name == "" && pass == "":
		return st.result(m.id, opBindResp, ldapSuccess, "", nil)
	case pass == "":
		// An unauthenticated bind (name, no password) is a classic way to
		// look authenticated while not being so (RFC 4513 §5.1.2).
		return st.result(m.id, opBindResp, ldapUnwillingToPerform, "unauthenticated bind (DN with no password) not allowed", nil)
	case !st.s.secure():
		return st.result(m.id, opBindResp, ldapConfidentialityReq, "StartTLS first", nil)
	case !st.s.checkUser(ldapUserOf(name), pass):
		return st.result(m.id, opBindResp, ldapInvalidCredentials, "", nil)
	}
	st.bound = name
	return st.result(m.id, opBindResp, ldapSuccess, "", nil)
}

// ldapUserOf maps a bind name to a user of Options.Users: the value of the
// first RDN ("cn=user,dc=test", "uid=user,..."), or the name itself.
func ldapUserOf(name string) string {
	first, _, _ := strings.Cut(name, ",")
	if _, v, ok := strings.Cut(first, "="); ok {
		return strings.TrimSpace(v)
	}
	return name
}

func (st *ldapState) search(m ldapRequest) bool {
	var f [8]tlv
	rest := m.body
	for i := range f {
		var err error
		if f[i], rest, err = berSplit(rest); err != nil {
			return st.result(m.id, opSearchDone, ldapProtocolError, "malformed SearchRequest", nil)
		}
	}
	base, scopeE, typesOnlyE, filter, attrsE := f[0], f[1], f[5], f[6], f[7]
	if base.tag != 0x04 || scopeE.tag != 0x0a || attrsE.tag != 0x30 {
		return st.result(m.id, opSearchDone, ldapProtocolError, "malformed SearchRequest", nil)
	}
	scope, err := berUint(scopeE.body)
	if err != nil {
		return st.result(m.id, opSearchDone, ldapProtocolError, "malformed SearchRequest", nil)
	}
	if len(base.body) != 0 {
		return st.result(m.id, opSearchDone, ldapNoSuchObject, "only the root DSE exists", nil)
	}
	if scope != 0 {
		// The root DSE has no children that a one-level or subtree search
		// could return, and is itself excluded from them.
		return st.result(m.id, opSearchDone, ldapSuccess, "", nil)
	}
	attrs := st.rootDSE()
	if !ldapPresentMatches(filter, attrs) {
		return st.result(m.id, opSearchDone, ldapSuccess, "", nil)
	}
	want, err := ldapAttrList(attrsE.body)
	if err != nil {
		return st.result(m.id, opSearchDone, ldapProtocolError, "malformed attribute list", nil)
	}
	typesOnly := len(typesOnlyE.body) == 1 && typesOnlyE.body[0] != 0
	if !st.send(ldapEncodeEntry(m.id, attrs, want, typesOnly)) {
		return false
	}
	return st.result(m.id, opSearchDone, ldapSuccess, "", nil)
}

// ldapAttr is one attribute of an entry.
type ldapAttr struct {
	name string
	vals []string
}

// rootDSE is the server's root DSE (RFC 4512 §5.1).
func (st *ldapState) rootDSE() []ldapAttr {
	var dcs []string
	for _, l := range strings.Split(st.s.o.Hostname, ".") {
		if l != "" {
			dcs = append(dcs, "dc="+l)
		}
	}
	return []ldapAttr{
		{"objectClass", []string{"top"}},
		{"namingContexts", []string{strings.Join(dcs, ",")}},
		{"supportedLDAPVersion", []string{"3"}},
		{"supportedExtension", []string{ldap.StartTLSOID, ldapWhoAmIOID}},
		{"vendorName", []string{"starttls-go"}},
	}
}

// ldapPresentMatches evaluates a present filter ("(objectClass=*)", what
// every root DSE search sends) against attrs; other filter types match,
// which is generous but harmless for a single public entry.
func ldapPresentMatches(filter tlv, attrs []ldapAttr) bool {
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

func ldapAttrList(b []byte) ([]string, error) {
	var out []string
	for i := 0; len(b) > 0; i++ {
		if i >= 256 {
			return nil, errBER
		}
		var e tlv
		var err error
		if e, b, err = berSplit(b); err != nil || e.tag != 0x04 {
			return nil, errBER
		}
		out = append(out, string(e.body))
	}
	return out, nil
}

// ldapSelected reports whether attribute name is returned for the list
// want. The root DSE's attributes are operational, which strictly are only
// returned when named or with "+" (RFC 3673); this server shows them for an
// empty list or "*" too, since whoever reads its root DSE wants to see them.
func ldapSelected(name string, want []string) bool {
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

func ldapEncodeEntry(id int, attrs []ldapAttr, want []string, typesOnly bool) []byte {
	return ldapMessage(id, opSearchEntry, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(nil) // objectName: the root DSE is ""
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, a := range attrs {
				if !ldapSelected(a.name, want) {
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

func (st *ldapState) extended(m ldapRequest) bool {
	nameE, rest, err := berSplit(m.body)
	if err != nil || nameE.tag != 0x80 {
		return st.result(m.id, opExtendedRes, ldapProtocolError, "malformed ExtendedRequest", nil)
	}
	switch string(nameE.body) {
	case ldap.StartTLSOID:
		// RFC 4511 §4.14.1: StartTLS while TLS is established is an
		// operationsError; in a plaintext session handed over by the
		// Optional policy the upgrade window has passed, which is the same
		// answer (the server half only upgrades a fresh session).
		diag := "TLS already established"
		if !st.s.secure() {
			diag = "StartTLS must be the first operation"
		}
		return st.resultNamed(m.id, ldapOperationsError, diag, ldap.StartTLSOID)
	case ldapWhoAmIOID:
		if len(rest) != 0 {
			return st.result(m.id, opExtendedRes, ldapProtocolError, "WhoAmI takes no requestValue", nil)
		}
		authz := ""
		if st.bound != "" {
			authz = "dn:" + st.bound
		}
		return st.result(m.id, opExtendedRes, ldapSuccess, "", &authz)
	}
	return st.result(m.id, opExtendedRes, ldapProtocolError, "unsupported extended operation", nil)
}

// ldapMessage wraps a constructed protocolOp into an LDAPMessage.
func ldapMessage(id, op int, body func(b *cryptobyte.Builder)) []byte {
	return ldap.Encode(id, op, true, body)
}

// ldapResult encodes a response with an LDAPResult and, for
// ExtendedResponse, an optional responseName and responseValue.
func ldapResult(id, op, code int, diag, name string, value *string) []byte {
	return ldapMessage(id, op, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(int64(code))
		b.AddASN1OctetString(nil)
		b.AddASN1OctetString([]byte(diag))
		if name != "" {
			b.AddASN1(cbasn1.Tag(10).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
		}
		if value != nil {
			b.AddASN1(cbasn1.Tag(11).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(*value)) })
		}
	})
}

func (st *ldapState) result(id, op, code int, diag string, value *string) bool {
	return st.send(ldapResult(id, op, code, diag, "", value))
}

func (st *ldapState) resultNamed(id, code int, diag, name string) bool {
	return st.send(ldapResult(id, opExtendedRes, code, diag, name, nil))
}

func (st *ldapState) send(b []byte) bool {
	_ = st.s.c.SetWriteDeadline(time.Now().Add(st.s.o.IdleTimeout))
	_, err := st.s.c.Write(b)
	return err == nil
}

// disconnect sends a Notice of Disconnection (RFC 4511 §4.4.1) before the
// session is closed for a protocol violation.
func (st *ldapState) disconnect(diag string) {
	st.send(ldapResult(0, opExtendedRes, ldapProtocolError, diag, ldapNoticeOID, nil))
}
