package tlsprobe

import (
	"fmt"
	"io"

	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// Bounds of a first flight: a long chain is a few tens of kilobytes.
const (
	maxFlight        = 256 << 10
	maxFlightRecords = 64
)

// flightReader yields the handshake messages of a server's cleartext
// first flight, reassembled across records, within maxFlightRecords
// records and maxFlight bytes. It is the prober's one first-flight
// reader: ReadFirstFlight and HelloKeyExchange parse what it yields.
type flightReader struct {
	r       io.Reader
	buf     []byte
	records int
	total   int
}

// next returns the next handshake message, header included. A hang-up
// is readRecord's error (ErrDeclined), an alert or any other record type
// ParseRecord's; too much is ErrFlightTooLarge.
func (fr *flightReader) next() ([]byte, error) {
	for {
		msg, rest, n := wire.SplitHandshake(fr.buf)
		if n > maxFlight {
			return nil, fmt.Errorf("%w: handshake message of %d bytes", ErrFlightTooLarge, n)
		}
		if msg != nil {
			fr.buf = rest
			return msg, nil
		}
		if fr.records == maxFlightRecords {
			return nil, fmt.Errorf("%w: more than %d records", ErrFlightTooLarge, maxFlightRecords)
		}
		fr.records++
		typ, body, err := readRecord(fr.r)
		if err != nil {
			return nil, err
		}
		if typ != RecordHandshake {
			_, err := ParseRecord(typ, body) // an alert (declined) or garbage
			return nil, err
		}
		if fr.total += len(body); fr.total > maxFlight {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrFlightTooLarge, maxFlight)
		}
		fr.buf = append(fr.buf, body...)
	}
}
