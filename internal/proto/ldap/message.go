// Package ldap is the wire codec of LDAP (RFC 4511) as far as the StartTLS
// upgrade needs it: a bounded BER reader, the LDAPMessage envelope, the
// LDAPResult of responses, the names of extended operations, and the
// encoders of the few messages the dialogues send.
//
// It is internal: the root package's LDAP dialogue, serve, clienttest and
// check share it, and it may change with them.
package ldap

import (
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// Object identifiers of the extended operations the upgrade speaks.
const (
	// StartTLSOID is the StartTLS extended operation (RFC 4511 §4.14).
	StartTLSOID = "1.3.6.1.4.1.1466.20037"
	// NoticeOfDisconnectionOID is the unsolicited notification a server
	// sends before closing (RFC 4511 §4.4.1).
	NoticeOfDisconnectionOID = "1.3.6.1.4.1.1466.20036"
)

// protocolOp tags ([APPLICATION n]) of RFC 4511 §4.2-4.14.
const (
	BindRequest          = 0
	BindResponse         = 1
	UnbindRequest        = 2
	SearchRequest        = 3
	SearchResEntry       = 4
	SearchResDone        = 5
	ModifyRequest        = 6
	ModifyResponse       = 7
	AddRequest           = 8
	AddResponse          = 9
	DelRequest           = 10
	DelResponse          = 11
	ModDNRequest         = 12
	ModDNResponse        = 13
	CompareRequest       = 14
	CompareResponse      = 15
	AbandonRequest       = 16
	SearchResRef         = 19
	ExtendedRequest      = 23
	ExtendedResponse     = 24
	IntermediateResponse = 25
)

var opNames = map[int]string{
	BindRequest: "BindRequest", BindResponse: "BindResponse", UnbindRequest: "UnbindRequest",
	SearchRequest: "SearchRequest", SearchResEntry: "SearchResultEntry", SearchResDone: "SearchResultDone",
	ModifyRequest: "ModifyRequest", ModifyResponse: "ModifyResponse", AddRequest: "AddRequest",
	AddResponse: "AddResponse", DelRequest: "DelRequest", DelResponse: "DelResponse",
	ModDNRequest: "ModifyDNRequest", ModDNResponse: "ModifyDNResponse", CompareRequest: "CompareRequest",
	CompareResponse: "CompareResponse", AbandonRequest: "AbandonRequest", SearchResRef: "SearchResultReference",
	ExtendedRequest: "ExtendedRequest", ExtendedResponse: "ExtendedResponse", IntermediateResponse: "IntermediateResponse",
}

// primitiveOps are the protocolOps whose encoding is primitive
// (NULL, LDAPDN, MessageID); all others are constructed SEQUENCEs.
var primitiveOps = map[int]bool{UnbindRequest: true, DelRequest: true, AbandonRequest: true}

// responseTo maps a request op to the response op that answers it.
var responseTo = map[int]int{
	BindRequest: BindResponse, SearchRequest: SearchResDone, ModifyRequest: ModifyResponse,
	AddRequest: AddResponse, DelRequest: DelResponse, ModDNRequest: ModDNResponse,
	CompareRequest: CompareResponse, ExtendedRequest: ExtendedResponse,
}

// hasResult are the ops that start with the LDAPResult components.
var hasResult = map[int]bool{
	BindResponse: true, SearchResDone: true, ModifyResponse: true, AddResponse: true,
	DelResponse: true, ModDNResponse: true, CompareResponse: true, ExtendedResponse: true,
}

// Result codes the dialogues use by name (RFC 4511 §4.1.9, Appendix A).
const (
	Success                 = 0
	OperationsError         = 1
	ProtocolError           = 2
	ConfidentialityRequired = 13
	Unavailable             = 52
)

var codeNames = map[int]string{
	0: "success", 1: "operationsError", 2: "protocolError", 3: "timeLimitExceeded", 4: "sizeLimitExceeded",
	5: "compareFalse", 6: "compareTrue", 7: "authMethodNotSupported", 8: "strongerAuthRequired", 10: "referral",
	11: "adminLimitExceeded", 12: "unavailableCriticalExtension", 13: "confidentialityRequired",
	14: "saslBindInProgress", 16: "noSuchAttribute", 17: "undefinedAttributeType", 18: "inappropriateMatching",
	19: "constraintViolation", 20: "attributeOrValueExists", 21: "invalidAttributeSyntax", 32: "noSuchObject",
	33: "aliasProblem", 34: "invalidDNSyntax", 36: "aliasDereferencingProblem", 48: "inappropriateAuthentication",
	49: "invalidCredentials", 50: "insufficientAccessRights", 51: "busy", 52: "unavailable", 53: "unwillingToPerform",
	54: "loopDetect", 64: "namingViolation", 65: "objectClassViolation", 66: "notAllowedOnNonLeaf",
	67: "notAllowedOnRDN", 68: "entryAlreadyExists", 69: "objectClassModsProhibited", 71: "affectsMultipleDSAs",
	80: "other",
}

// ResultCodeName returns the RFC 4511 name of a result code
// ("unavailable"), or "resultCode N" for codes it does not know.
func ResultCodeName(code int) string {
	if n, ok := codeNames[code]; ok {
		return n
	}
	return fmt.Sprintf("resultCode %d", code)
}

// Message is what the dialogues need of one LDAPMessage: its envelope,
// and for the operations it answers or inspects, their fields.
type Message struct {
	ID int // messageID; 0 only for unsolicited notifications
	Op int // the protocolOp's [APPLICATION n] tag number
	// HasResult is set for response operations that carry an LDAPResult;
	// ResultCode, MatchedDN and Diagnostic are its fields.
	HasResult  bool
	ResultCode int
	MatchedDN  string
	Diagnostic string
	// Name is the requestName or responseName of an extended operation
	// ("" when absent); HasValue reports a requestValue or responseValue.
	Name     string
	HasValue bool
	// Controls reports a controls field.
	Controls bool
}

// OpName names the protocolOp ("ExtendedResponse").
func (m *Message) OpName() string { return OpName(m.Op) }

// String describes the message for transcripts and errors.
func (m *Message) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s messageID=%d", m.OpName(), m.ID)
	if m.Name != "" {
		fmt.Fprintf(&b, " name=%s", m.Name)
	}
	if m.HasResult {
		fmt.Fprintf(&b, " resultCode=%d (%s)", m.ResultCode, ResultCodeName(m.ResultCode))
		if m.MatchedDN != "" {
			fmt.Fprintf(&b, " matchedDN=%q", m.MatchedDN)
		}
		if m.Diagnostic != "" {
			fmt.Fprintf(&b, " diagnostic=%q", m.Diagnostic)
		}
	}
	return b.String()
}

// OpName names a protocolOp ("ExtendedResponse").
func OpName(op int) string {
	if n, ok := opNames[op]; ok {
		return n
	}
	return fmt.Sprintf("[APPLICATION %d]", op)
}

// ResponseTo returns the response op that answers the request op, and
// false when op is not a request that has one.
func ResponseTo(op int) (int, bool) {
	r, ok := responseTo[op]
	return r, ok
}

// IsNotice reports a Notice of Disconnection (RFC 4511 §4.4.1): the
// server is ending the session.
func IsNotice(m *Message) bool {
	return m.ID == 0 && m.Op == ExtendedResponse && m.Name == NoticeOfDisconnectionOID
}

// ParseMessage decodes exactly one LDAPMessage (RFC 4511 §4.1.1) from
// b. It checks the envelope (SEQUENCE, messageID, one protocolOp of the
// application class, optional controls, nothing after them) and decodes
// the LDAPResult of responses and the name of extended operations; other
// operations' contents are not looked at. Errors match wire.ErrProtocol.
func ParseMessage(b []byte) (*Message, error) {
	env, rest, err := berNext(b)
	if err != nil {
		return nil, err
	}
	if env.tag != berSequence {
		return nil, berErr("LDAPMessage is %v, want a SEQUENCE (0x30)", env)
	}
	if len(rest) != 0 {
		return nil, berErr("%d bytes after the LDAPMessage", len(rest))
	}
	idElem, body, err := berNext(env.body)
	if err != nil {
		return nil, err
	}
	if idElem.tag != berInteger {
		return nil, berErr("messageID is %v, want an INTEGER", idElem)
	}
	m := &Message{}
	if m.ID, err = berInt(idElem, "messageID"); err != nil {
		return nil, err
	}
	op, body, err := berNext(body)
	if err != nil {
		return nil, err
	}
	if op.class() != 0x40 {
		return nil, berErr("protocolOp is %v, not of the application class", op)
	}
	m.Op = op.number()
	if _, known := opNames[m.Op]; !known {
		return nil, berErr("unknown protocolOp [APPLICATION %d]", m.Op)
	}
	if op.constructed() == primitiveOps[m.Op] {
		return nil, berErr("%s with the wrong form (%v)", m.OpName(), op)
	}
	if len(body) > 0 {
		ctl, after, err := berNext(body)
		if err != nil {
			return nil, err
		}
		if ctl.tag != 0xa0 {
			return nil, berErr("%v after the protocolOp, want controls [0]", ctl)
		}
		if len(after) != 0 {
			return nil, berErr("%d bytes after the controls", len(after))
		}
		m.Controls = true
	}
	fields := op.body
	if hasResult[m.Op] {
		if fields, err = m.parseResult(fields); err != nil {
			return nil, err
		}
	}
	switch m.Op {
	case ExtendedRequest:
		// ExtendedRequest ::= [APPLICATION 23] SEQUENCE {
		//   requestName [0] LDAPOID, requestValue [1] OCTET STRING OPTIONAL }
		e, r, err := berNext(fields)
		if err != nil {
			return nil, err
		}
		if e.tag != 0x80 {
			return nil, berErr("requestName is %v, want [0]", e)
		}
		m.Name = e.str()
		if len(r) > 0 {
			v, r2, err := berNext(r)
			if err != nil {
				return nil, err
			}
			if v.tag != 0x81 {
				return nil, berErr("%v after the requestName, want requestValue [1]", v)
			}
			m.HasValue = true
			r = r2
		}
		if len(r) != 0 {
			return nil, berErr("%d bytes after the requestValue", len(r))
		}
	case ExtendedResponse:
		// ExtendedResponse ::= [APPLICATION 24] SEQUENCE { COMPONENTS OF
		//   LDAPResult, responseName [10] LDAPOID OPTIONAL,
		//   responseValue [11] OCTET STRING OPTIONAL }
		r := fields
		if len(r) > 0 && r[0] == 0x8a {
			e, r2, err := berNext(r)
			if err != nil {
				return nil, err
			}
			m.Name, r = e.str(), r2
		}
		if len(r) > 0 && r[0] == 0x8b {
			_, r2, err := berNext(r)
			if err != nil {
				return nil, err
			}
			m.HasValue, r = true, r2
		}
		if len(r) != 0 {
			return nil, berErr("%d unexpected bytes at the end of the ExtendedResponse", len(r))
		}
	}
	return m, nil
}

// parseResult decodes the LDAPResult components at the start of an op:
// resultCode ENUMERATED, matchedDN and diagnosticMessage OCTET STRINGs
// (primitive only, RFC 4511 §5.1), referral [3] OPTIONAL. It returns what
// follows them.
func (m *Message) parseResult(b []byte) ([]byte, error) {
	code, b, err := berNext(b)
	if err != nil {
		return nil, err
	}
	if code.tag != berEnumerated {
		return nil, berErr("resultCode is %v, want an ENUMERATED", code)
	}
	if m.ResultCode, err = berInt(code, "resultCode"); err != nil {
		return nil, err
	}
	for _, f := range []*string{&m.MatchedDN, &m.Diagnostic} {
		var e berElem
		if e, b, err = berNext(b); err != nil {
			return nil, err
		}
		if e.tag != berOctetString {
			return nil, berErr("LDAPResult string is %v, want a primitive OCTET STRING", e)
		}
		*f = e.str()
	}
	m.HasResult = true
	if len(b) > 0 && b[0] == 0xa3 {
		if _, b, err = berNext(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appTag is the identifier of [APPLICATION n], constructed or not.
func appTag(n int, constructed bool) cbasn1.Tag {
	t := cbasn1.Tag(0x40 | n)
	if constructed {
		t = t.Constructed()
	}
	return t
}

// Encode wraps a protocolOp into an LDAPMessage (DER, which is BER).
func Encode(id, op int, constructed bool, body func(b *cryptobyte.Builder)) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(id))
		b.AddASN1(appTag(op, constructed), body)
	})
	return b.BytesOrPanic()
}

// EncodeExtendedRequest encodes an ExtendedRequest without a requestValue.
func EncodeExtendedRequest(id int, oid string) []byte {
	return Encode(id, ExtendedRequest, true, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(oid)) })
	})
}

// EncodeResult encodes a response op holding an LDAPResult (matchedDN
// empty) and, for ExtendedResponse, a responseName when name is not "".
func EncodeResult(id, op, code int, diag, name string) []byte {
	return Encode(id, op, true, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(int64(code))
		b.AddASN1OctetString(nil)
		b.AddASN1OctetString([]byte(diag))
		if name != "" {
			b.AddASN1(cbasn1.Tag(10).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
		}
	})
}

// EncodeUnbind encodes an UnbindRequest (a NULL).
func EncodeUnbind(id int) []byte {
	return Encode(id, UnbindRequest, false, func(*cryptobyte.Builder) {})
}
