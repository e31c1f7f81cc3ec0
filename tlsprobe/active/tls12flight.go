package active

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// legacySuiteIDs offers every pre-1.3 suite, the best first: the probes that
// stop after the first flight want any handshake at all.
func legacySuiteIDs() []uint16 { return tlsprobe.HelloFor(tlsprobe.TLS12).Suites }

// flight is a connection on which the ClientHello was sent and the
// server's first flight read, positioned where the client's second flight
// is due.
type flight struct {
	conn net.Conn
	rc   *recordConn
	ff   *firstFlight
	stop func() bool
}

// openFlight dials, sends h and reads the server's first flight. The
// caller closes the flight.
func openFlight(ctx context.Context, dial tlsprobe.Dialer, h *hello12) (*flight, error) {
	conn, err := dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	f := &flight{conn: conn, rc: &recordConn{conn: conn, version: uint16(tlsprobe.TLS10)}}
	f.stop = wire.Bind(ctx, conn)
	if err := f.rc.write(tlsprobe.RecordHandshake, h.marshal()); err != nil {
		f.close()
		return nil, wire.DeclinedIfReset(err)
	}
	ff, full, err := readFirstFlight(f.rc, nil)
	switch {
	case err != nil:
		f.close()
		return nil, declinedIfHangup(err)
	case !full:
		f.close()
		return nil, fmt.Errorf("%w: no ServerHelloDone", tlsprobe.ErrNotTLS)
	case ff.hello.version != h.version:
		f.close()
		return nil, fmt.Errorf("%w: server chose %s instead of %s", tlsprobe.ErrDeclined, tlsprobe.Version(ff.hello.version), tlsprobe.Version(h.version))
	}
	f.ff = ff
	f.rc.version = h.version
	return f, nil
}

func (f *flight) close() {
	f.stop()
	_ = f.conn.Close()
}

// answer is how a server reacted to what a probe sent after its first
// flight: an alert, a hang-up, silence until the deadline, or a record.
type answer struct {
	alert   *tlsprobe.Alert
	closed  bool // EOF or reset
	timeout bool
	record  *tlsprobe.Record // anything else
}

func (a answer) String() string {
	switch {
	case a.alert != nil:
		return "alert " + tlsprobe.AlertName(a.alert.Description)
	case a.closed:
		return "connection closed"
	case a.timeout:
		return "no answer"
	case a.record != nil:
		return fmt.Sprintf("record type %d of %d bytes", a.record.Type, len(a.record.Body))
	}
	return "nothing"
}

// readAnswer reads the server's next record and classifies it. Errors
// other than a hang-up or the deadline are returned (garbage).
func (f *flight) readAnswer() (answer, error) {
	rec, err := f.rc.read()
	var ne net.Error
	switch {
	case errors.Is(err, io.EOF) || wire.IsReset(err):
		return answer{closed: true}, nil
	case errors.As(err, &ne) && ne.Timeout():
		return answer{timeout: true}, nil
	case err != nil:
		return answer{}, err
	case rec.Type == tlsprobe.RecordAlert:
		a, err := tlsprobe.ParseAlert(rec.Body)
		if err != nil {
			return answer{}, err
		}
		return answer{alert: &a}, nil
	}
	return answer{record: &rec}, nil
}
