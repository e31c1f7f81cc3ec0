package ldap

import (
	"errors"
	"fmt"

	"github.com/starttls-go/starttls/internal/wire"
)

// BER as LDAP uses it (RFC 4511 §5.1): definite lengths only, low tag
// numbers only, and nothing read or allocated beyond a caller's limit.

// errBER is the cause of every decoding failure.
var errBER = errors.New("malformed BER")

func berErr(format string, args ...any) error {
	return fmt.Errorf("%w: %w: %s", wire.ErrProtocol, errBER, fmt.Sprintf(format, args...))
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

// ReadMessage reads one LDAPMessage with a bounded reader: the tag and
// the length octets first, so that a wrong tag, an indefinite or oversize
// length fails before anything else is read or allocated.
func ReadMessage(readFull func([]byte) error, limit int) ([]byte, error) {
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
		return hdr, fmt.Errorf("%w: LDAPMessage of %d bytes exceeds the limit of %d", wire.ErrTooMuchData, n, limit)
	}
	msg := make([]byte, len(hdr)+n)
	copy(msg, hdr)
	if err := readFull(msg[len(hdr):]); err != nil {
		return nil, err
	}
	return msg, nil
}
