package starttls

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// LDAP (RFC 4511; StartTLS extended operation §4.14, RFC 4513 §3) and ldaps.
//
// LDAP is a BER protocol: every message is an LDAPMessage SEQUENCE with a
// messageID and one protocolOp. The client speaks first (there is no
// greeting and no capability list before the request), so STARTTLS is
// taken as offered and the server's answer to the extended request decides.
// Messages are read with a bounded BER reader: the tag and length come
// first, so that nothing is allocated or waited for beyond the limit.

// LDAP protocol names.
const (
	LDAP  Protocol = "ldap"
	LDAPS Protocol = "ldaps"
)

// LDAP object identifiers of the operations this file speaks.
const (
	// LDAPStartTLSOID is the StartTLS extended operation (RFC 4511 §4.14).
	LDAPStartTLSOID = "1.3.6.1.4.1.1466.20037"
	// LDAPNoticeOfDisconnectionOID is the unsolicited notification a server
	// sends before closing (RFC 4511 §4.4.1).
	LDAPNoticeOfDisconnectionOID = "1.3.6.1.4.1.1466.20036"
)

func init() {
	register(&spec{name: LDAP, port: 389, client: ldapClient(), server: ldapServer()})
	registerImplicit(LDAPS, LDAP, 636)
}

// protocolOp tags ([APPLICATION n]) of RFC 4511 §4.2-4.14.
const (
	ldapBindRequest      = 0
	ldapBindResponse     = 1
	ldapUnbindRequest    = 2
	ldapSearchRequest    = 3
	ldapSearchResEntry   = 4
	ldapSearchResDone    = 5
	ldapModifyRequest    = 6
	ldapModifyResponse   = 7
	ldapAddRequest       = 8
	ldapAddResponse      = 9
	ldapDelRequest       = 10
	ldapDelResponse      = 11
	ldapModDNRequest     = 12
	ldapModDNResponse    = 13
	ldapCompareRequest   = 14
	ldapCompareResponse  = 15
	ldapAbandonRequest   = 16
	ldapSearchResRef     = 19
	ldapExtendedRequest  = 23
	ldapExtendedResponse = 24
	ldapIntermediateResp = 25
)

var ldapOpNames = map[int]string{
	ldapBindRequest: "BindRequest", ldapBindResponse: "BindResponse", ldapUnbindRequest: "UnbindRequest",
	ldapSearchRequest: "SearchRequest", ldapSearchResEntry: "SearchResultEntry", ldapSearchResDone: "SearchResultDone",
	ldapModifyRequest: "ModifyRequest", ldapModifyResponse: "ModifyResponse", ldapAddRequest: "AddRequest",
	ldapAddResponse: "AddResponse", ldapDelRequest: "DelRequest", ldapDelResponse: "DelResponse",
	ldapModDNRequest: "ModifyDNRequest", ldapModDNResponse: "ModifyDNResponse", ldapCompareRequest: "CompareRequest",
	ldapCompareResponse: "CompareResponse", ldapAbandonRequest: "AbandonRequest", ldapSearchResRef: "SearchResultReference",
	ldapExtendedRequest: "ExtendedRequest", ldapExtendedResponse: "ExtendedResponse", ldapIntermediateResp: "IntermediateResponse",
}

// ldapPrimitiveOps are the protocolOps whose encoding is primitive
// (NULL, LDAPDN, MessageID); all others are constructed SEQUENCEs.
var ldapPrimitiveOps = map[int]bool{ldapUnbindRequest: true, ldapDelRequest: true, ldapAbandonRequest: true}

// ldapResponseTo maps a request op to the response op that answers it.
var ldapResponseTo = map[int]int{
	ldapBindRequest: ldapBindResponse, ldapSearchRequest: ldapSearchResDone, ldapModifyRequest: ldapModifyResponse,
	ldapAddRequest: ldapAddResponse, ldapDelRequest: ldapDelResponse, ldapModDNRequest: ldapModDNResponse,
	ldapCompareRequest: ldapCompareResponse, ldapExtendedRequest: ldapExtendedResponse,
}

// ldapHasResult are the ops that start with the LDAPResult components.
var ldapHasResult = map[int]bool{
	ldapBindResponse: true, ldapSearchResDone: true, ldapModifyResponse: true, ldapAddResponse: true,
	ldapDelResponse: true, ldapModDNResponse: true, ldapCompareResponse: true, ldapExtendedResponse: true,
}

// LDAP result codes this package names (RFC 4511 §4.1.9, Appendix A).
const (
	LDAPSuccess                 = 0
	LDAPOperationsError         = 1
	LDAPProtocolError           = 2
	LDAPConfidentialityRequired = 13
	LDAPUnavailable             = 52
)

var ldapCodeNames = map[int]string{
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

// LDAPResultCodeName returns the RFC 4511 name of a result code
// ("unavailable"), or "resultCode N" for codes it does not know.
func LDAPResultCodeName(code int) string {
	if n, ok := ldapCodeNames[code]; ok {
		return n
	}
	return fmt.Sprintf("resultCode %d", code)
}

// LDAPMessage is what the dialogue needs of one LDAPMessage: its envelope,
// and for the operations it answers or inspects, their fields.
type LDAPMessage struct {
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
func (m *LDAPMessage) OpName() string {
	if n, ok := ldapOpNames[m.Op]; ok {
		return n
	}
	return fmt.Sprintf("[APPLICATION %d]", m.Op)
}

// String describes the message for transcripts and errors.
func (m *LDAPMessage) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s messageID=%d", m.OpName(), m.ID)
	if m.Name != "" {
		fmt.Fprintf(&b, " name=%s", m.Name)
	}
	if m.HasResult {
		fmt.Fprintf(&b, " resultCode=%d (%s)", m.ResultCode, LDAPResultCodeName(m.ResultCode))
		if m.MatchedDN != "" {
			fmt.Fprintf(&b, " matchedDN=%q", m.MatchedDN)
		}
		if m.Diagnostic != "" {
			fmt.Fprintf(&b, " diagnostic=%q", m.Diagnostic)
		}
	}
	return b.String()
}

// errBER is the cause of every decoding failure.
var errBER = errors.New("malformed BER")

func berErr(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", ErrProtocol, errBER, fmt.Sprintf(format, args...))
}

// berElem is one decoded TLV.
type berElem struct {
	tag  byte // identifier octet: class, constructed bit, number (< 31)
	body []byte
}

func (e berElem) class() byte       { return e.tag & 0xc0 }
func (e berElem) constructed() bool { return e.tag&0x20 != 0 }
func (e berElem) number() int       { return int(e.tag & 0x1f) }
func (e berElem) String() string    { return fmt.Sprintf("tag 0x%02x (%d bytes)", e.tag, len(e.body)) }
func (e berElem) str() string       { return string(e.body) }

// berNext splits the first TLV off b. BER's definite lengths are accepted
// in any form (short, or long with up to four length octets, minimal or
// not: some servers always use four); indefinite lengths, which RFC 4511
// §5.1 forbids, and high tag numbers, which LDAP never uses, are errors.
func berNext(b []byte) (berElem, []byte, error) {
	if len(b) < 2 {
		return berElem{}, nil, berErr("truncated element (%d bytes)", len(b))
	}
	tag := b[0]
	if tag&0x1f == 0x1f {
		return berElem{}, nil, berErr("high tag number form (0x%02x)", tag)
	}
	n, off, err := berLength(b[1:])
	if err != nil {
		return berElem{}, nil, err
	}
	off++
	if n > len(b)-off {
		return berElem{}, nil, berErr("element of %d bytes overruns its container (%d bytes left)", n, len(b)-off)
	}
	return berElem{tag: tag, body: b[off : off+n]}, b[off+n:], nil
}

// berMaxLength bounds the length octets: four octets (4 GiB) is beyond any
// limit in use, so more is an error rather than an overflow.
const berMaxLengthOctets = 4

// berLength decodes the length octets at the start of b and returns the
// length and the number of octets it took.
func berLength(b []byte) (n, size int, err error) {
	if len(b) == 0 {
		return 0, 0, berErr("missing length")
	}
	l := b[0]
	switch {
	case l < 0x80:
		return int(l), 1, nil
	case l == 0x80:
		return 0, 0, berErr("indefinite length")
	case l == 0xff:
		return 0, 0, berErr("reserved length octet 0xff")
	}
	k := int(l & 0x7f)
	if k > berMaxLengthOctets {
		return 0, 0, berErr("length of %d octets", k)
	}
	if len(b) < 1+k {
		return 0, 0, berErr("truncated length")
	}
	var v uint64
	for _, c := range b[1 : 1+k] {
		v = v<<8 | uint64(c)
	}
	if v > 1<<31-1 {
		return 0, 0, berErr("length %d", v)
	}
	return int(v), 1 + k, nil
}

// berInt decodes a non-negative INTEGER or ENUMERATED body up to 2^31-1.
func berInt(e berElem, what string) (int, error) {
	if e.constructed() {
		return 0, berErr("%s is constructed", what)
	}
	if len(e.body) == 0 || len(e.body) > 5 || (len(e.body) == 5 && e.body[0] != 0) {
		return 0, berErr("%s of %d bytes", what, len(e.body))
	}
	if e.body[0]&0x80 != 0 {
		return 0, berErr("negative %s", what)
	}
	var v int64
	for _, c := range e.body {
		v = v<<8 | int64(c)
	}
	if v > 1<<31-1 {
		return 0, berErr("%s %d out of range", what, v)
	}
	return int(v), nil
}

// Universal and LDAP tags used below.
const (
	berInteger     = 0x02
	berOctetString = 0x04
	berEnumerated  = 0x0a
	berSequence    = 0x30
)

// ParseLDAPMessage decodes exactly one LDAPMessage (RFC 4511 §4.1.1) from
// b. It checks the envelope (SEQUENCE, messageID, one protocolOp of the
// application class, optional controls, nothing after them) and decodes
// the LDAPResult of responses and the name of extended operations; other
// operations' contents are not looked at. Errors match ErrProtocol.
func ParseLDAPMessage(b []byte) (*LDAPMessage, error) {
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
	m := &LDAPMessage{}
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
	if _, known := ldapOpNames[m.Op]; !known {
		return nil, berErr("unknown protocolOp [APPLICATION %d]", m.Op)
	}
	if op.constructed() == ldapPrimitiveOps[m.Op] {
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
	if ldapHasResult[m.Op] {
		if fields, err = m.parseResult(fields); err != nil {
			return nil, err
		}
	}
	switch m.Op {
	case ldapExtendedRequest:
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
	case ldapExtendedResponse:
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
func (m *LDAPMessage) parseResult(b []byte) ([]byte, error) {
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

// ldapAppTag is the identifier of [APPLICATION n], constructed or not.
func ldapAppTag(n int, constructed bool) cbasn1.Tag {
	t := cbasn1.Tag(0x40 | n)
	if constructed {
		t = t.Constructed()
	}
	return t
}

// ldapEncode wraps a protocolOp into an LDAPMessage (DER, which is BER).
func ldapEncode(id, op int, constructed bool, body func(b *cryptobyte.Builder)) []byte {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(int64(id))
		b.AddASN1(ldapAppTag(op, constructed), body)
	})
	return b.BytesOrPanic()
}

// ldapExtendedRequest encodes an ExtendedRequest without a requestValue.
func ldapEncodeExtendedRequest(id int, oid string) []byte {
	return ldapEncode(id, ldapExtendedRequest, true, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(oid)) })
	})
}

// ldapEncodeResult encodes a response op holding an LDAPResult (matchedDN
// empty) and, for ExtendedResponse, a responseName when name is not "".
func ldapEncodeResult(id, op, code int, diag, name string) []byte {
	return ldapEncode(id, op, true, func(b *cryptobyte.Builder) {
		b.AddASN1Enum(int64(code))
		b.AddASN1OctetString(nil)
		b.AddASN1OctetString([]byte(diag))
		if name != "" {
			b.AddASN1(cbasn1.Tag(10).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(name)) })
		}
	})
}

// ldapEncodeUnbind encodes an UnbindRequest (a NULL).
func ldapEncodeUnbind(id int) []byte {
	return ldapEncode(id, ldapUnbindRequest, false, func(*cryptobyte.Builder) {})
}

// readLDAPMessage reads one LDAPMessage with a bounded reader: the tag and
// the length octets first, so that a wrong tag, an indefinite or oversize
// length fails before anything else is read or allocated.
func readLDAPMessage(readFull func([]byte) error, limit int) ([]byte, error) {
	hdr := make([]byte, 2, 2+berMaxLengthOctets)
	if err := readFull(hdr); err != nil {
		return nil, err
	}
	if hdr[0] != berSequence {
		return hdr, berErr("message starts with 0x%02x, not an LDAPMessage SEQUENCE (0x30)", hdr[0])
	}
	if l := hdr[1]; l > 0x80 && l != 0xff && int(l&0x7f) <= berMaxLengthOctets {
		more := hdr[2 : 2+int(l&0x7f)]
		if err := readFull(more); err != nil {
			return nil, err
		}
		hdr = hdr[:2+len(more)]
	}
	n, _, err := berLength(hdr[1:])
	if err != nil {
		return hdr, err
	}
	if n > limit {
		return hdr, fmt.Errorf("%w: LDAPMessage of %d bytes exceeds the limit of %d", ErrTooMuchData, n, limit)
	}
	msg := make([]byte, len(hdr)+n)
	copy(msg, hdr)
	if err := readFull(msg[len(hdr):]); err != nil {
		return nil, err
	}
	return msg, nil
}

// readLDAP reads and decodes one message from the server.
func (s *clientSession) readLDAP() (*LDAPMessage, error) {
	raw, err := readLDAPMessage(s.readFull, s.cfg.MaxLineLength)
	if err != nil {
		return nil, s.ldapErr(err, raw)
	}
	m, err := ParseLDAPMessage(raw)
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

// ldapDisconnected describes a Notice of Disconnection (RFC 4511 §4.4.1):
// the server is ending the session.
func ldapIsNotice(m *LDAPMessage) bool {
	return m.ID == 0 && m.Op == ldapExtendedResponse && m.Name == LDAPNoticeOfDisconnectionOID
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
			if err := s.sendRaw(ldapEncodeExtendedRequest(id, LDAPStartTLSOID),
				fmt.Sprintf("ExtendedRequest messageID=%d name=%s (StartTLS)", id, LDAPStartTLSOID)); err != nil {
				return err
			}
			m, err := s.readLDAP()
			if err != nil {
				return err
			}
			if ldapIsNotice(m) {
				return s.failf(ErrClosed, m.Diagnostic, "notice of disconnection: %s", LDAPResultCodeName(m.ResultCode))
			}
			if m.ID != id {
				return s.failf(ErrProtocol, m.String(), "answer has messageID %d, the request had %d", m.ID, id)
			}
			if m.Op != ldapExtendedResponse {
				return s.failf(ErrProtocol, m.String(), "answer to the StartTLS request is a %s, not an ExtendedResponse", m.OpName())
			}
			if m.ResultCode != LDAPSuccess {
				reply := m.Diagnostic
				if reply == "" {
					reply = m.String()
				}
				return s.failf(ErrRefused, reply, "resultCode %d (%s)", m.ResultCode, LDAPResultCodeName(m.ResultCode))
			}
			if m.Name != "" && m.Name != LDAPStartTLSOID {
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
			return s.sendRaw(ldapEncodeUnbind(s.tag), fmt.Sprintf("UnbindRequest messageID=%d", s.tag))
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
			m := ldapEncodeResult(id, ldapExtendedResponse, LDAPSuccess, "", LDAPStartTLSOID)
			return s.sendRaw(m, fmt.Sprintf("ExtendedResponse messageID=%d resultCode=0 (success) name=%s", id, LDAPStartTLSOID))
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
	m := ldapEncodeResult(0, ldapExtendedResponse, LDAPProtocolError, diag, LDAPNoticeOfDisconnectionOID)
	_ = s.sendRaw(m, "ExtendedResponse messageID=0 (notice of disconnection) resultCode=2 (protocolError)")
}

func ldapServe(s *serverSession) (action, error) {
	st := &ldapServerState{}
	s.state = st
	for i := 0; i < s.cfg.MaxCommands; i++ {
		raw, err := readLDAPMessage(s.readFull, s.ldapMaxMessage())
		if err != nil {
			var pe *ProtocolError
			if errors.As(err, &pe) || !(errors.Is(err, ErrProtocol) || errors.Is(err, ErrTooMuchData)) {
				return 0, s.ioErr(err)
			}
			s.ldapDisconnect("malformed LDAPMessage")
			return 0, s.fail(err, quote(raw))
		}
		m, err := ParseLDAPMessage(raw)
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
		case ldapExtendedRequest:
			if m.Name == LDAPStartTLSOID {
				if m.HasValue {
					// RFC 4511 §4.14.1: the requestValue is absent.
					if err := s.ldapAnswer(m, LDAPProtocolError, "StartTLS takes no requestValue"); err != nil {
						return 0, err
					}
					continue
				}
				st.startTLSID = m.ID
				return actStartTLS, nil
			}
		case ldapUnbindRequest:
			return actQuit, nil
		case ldapAbandonRequest:
			// No response; nothing is outstanding before TLS.
			continue
		}
		if _, isRequest := ldapResponseTo[m.Op]; !isRequest {
			s.ldapDisconnect(m.OpName() + " from a client")
			return 0, s.fail(fmt.Errorf("%w: client sent a %s", ErrProtocol, m.OpName()), m.String())
		}
		if s.cfg.Policy == Optional {
			s.c.pending = raw
			return actHandoff, nil
		}
		// RFC 4513 §3: a server that requires TLS answers
		// confidentialityRequired and the session stays usable.
		if err := s.ldapAnswer(m, LDAPConfidentialityRequired, "StartTLS required"); err != nil {
			return 0, err
		}
	}
	return 0, s.fail(fmt.Errorf("%w: more than %d messages before TLS", ErrProtocol, s.cfg.MaxCommands), "")
}

// ldapAnswer sends the response op matching the request m with a result.
func (s *serverSession) ldapAnswer(m *LDAPMessage, code int, diag string) error {
	op := ldapResponseTo[m.Op]
	b := ldapEncodeResult(m.ID, op, code, diag, "")
	return s.sendRaw(b, fmt.Sprintf("%s messageID=%d resultCode=%d (%s) diagnostic=%q",
		ldapOpNames[op], m.ID, code, LDAPResultCodeName(code), diag))
}
