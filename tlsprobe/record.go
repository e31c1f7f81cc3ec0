package tlsprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// Record content types (RFC 5246 §6.2.1, RFC 6520 §3).
const (
	RecordChangeCipherSpec uint8 = 20
	RecordAlert            uint8 = 21
	RecordHandshake        uint8 = 22
	RecordApplicationData  uint8 = 23
	RecordHeartbeat        uint8 = 24
)

// Alert descriptions the active probes tell apart (RFC 5246 §7.2).
const (
	AlertCloseNotify       uint8 = 0
	AlertUnexpectedMessage uint8 = 10
	AlertBadRecordMAC      uint8 = 20
	AlertDecryptionFailed  uint8 = 21
	AlertHandshakeFailure  uint8 = 40
	AlertDecryptError      uint8 = 51
	AlertNoRenegotiation   uint8 = 100
)

// maxRecord bounds every record read (RFC 5246 §6.2.3, RFC 8446 §5.2:
// 2^14 + 2048, the largest ciphertext).
const maxRecord = 16384 + 2048

// Record is one TLS record as read from or written to the wire.
type Record struct {
	Type    uint8
	Version uint16
	Body    []byte
}

// Marshal is the record's wire form.
func (r Record) Marshal() []byte {
	out := []byte{r.Type, byte(r.Version >> 8), byte(r.Version), byte(len(r.Body) >> 8), byte(len(r.Body))}
	return append(out, r.Body...)
}

// ReadRecord reads one record of at most maxRecord (2^14+2048) bytes. It
// is the package's one record reader: the prober, the first-flight reader
// and the TLS 1.2 client all read through it. It accepts empty records
// and every record type of RFC 5246 (20 to 24): the active probes must see
// whatever the server sends. A hang-up before a header is the reader's
// error as is (io.EOF or a reset); anything else wraps ErrNotTLS, and a
// cut-off record wraps io.ErrUnexpectedEOF too.
func ReadRecord(r io.Reader) (Record, error) {
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return Record{}, err
	}
	switch {
	case hdr[0]&0x80 != 0:
		return Record{}, fmt.Errorf("%w: SSLv2-style record header %x", ErrNotTLS, hdr)
	case hdr[1] != 3:
		return Record{}, fmt.Errorf("%w: record version %x", ErrNotTLS, hdr[1:3])
	case hdr[0] < RecordChangeCipherSpec || hdr[0] > RecordHeartbeat:
		return Record{}, fmt.Errorf("%w: record type %d", ErrNotTLS, hdr[0])
	}
	n := int(binary.BigEndian.Uint16(hdr[3:]))
	if n > maxRecord {
		return Record{}, fmt.Errorf("%w: record length %d", ErrNotTLS, n)
	}
	rec := Record{Type: hdr[0], Version: binary.BigEndian.Uint16(hdr[1:]), Body: make([]byte, n)}
	if _, err := io.ReadFull(r, rec.Body); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return Record{}, fmt.Errorf("%w: reading a %d-byte record: %w", ErrNotTLS, n, err)
	}
	return rec, nil
}

// readRecord is ReadRecord for the ClientHello prober, which reads a
// server's first answer: a hang-up before any record is a refusal
// (ErrDeclined), and an empty record is garbage (no handshake or alert
// record may be empty, RFC 5246 §6.2.1).
func readRecord(r io.Reader) (byte, []byte, error) {
	rec, err := ReadRecord(r)
	switch {
	case err != nil && !errors.Is(err, ErrNotTLS):
		return 0, nil, wire.DeclinedIfReset(err)
	case err != nil:
		return 0, nil, err
	case len(rec.Body) == 0:
		return 0, nil, fmt.Errorf("%w: record length 0", ErrNotTLS)
	}
	return rec.Type, rec.Body, nil
}

// ParseAlert reads an alert record's body.
func ParseAlert(body []byte) (Alert, error) {
	if len(body) != 2 {
		return Alert{}, fmt.Errorf("%w: alert of %d bytes", ErrNotTLS, len(body))
	}
	return Alert{Level: body[0], Description: body[1]}, nil
}
