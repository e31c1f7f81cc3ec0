package active

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"

	"github.com/starttls-go/starttls/tlsprobe"
)

// heartbleedAsk is the payload_length of the malformed heartbeat request:
// 16 KiB, against a payload of 16 bytes. A vulnerable server answers with
// that much of its memory; the probe reads one record of it and stops.
const heartbleedAsk = 0x4000

// ParseHeartbeat reads a heartbeat message (RFC 6520 §4): its type, the
// payload_length it declares and the payload bytes present (fewer than
// declared when the message is cut off or lies about its length).
func ParseHeartbeat(body []byte) (typ uint8, declared int, payload []byte, err error) {
	if len(body) < 3 {
		return 0, 0, nil, fmt.Errorf("%w: heartbeat message of %d bytes", tlsprobe.ErrNotTLS, len(body))
	}
	declared = int(body[1])<<8 | int(body[2])
	payload = body[3:]
	if len(payload) > declared {
		payload = payload[:declared]
	}
	return body[0], declared, payload, nil
}

func heartbeatRequest(declared int, payload []byte) []byte {
	pad := make([]byte, 16)
	_, _ = rand.Read(pad)
	out := append([]byte{1, byte(declared >> 8), byte(declared)}, payload...)
	return append(out, pad...)
}

// Heartbleed (CVE-2014-0160) offers the heartbeat extension in a version v
// ClientHello; when the server lists it, it sends after the first flight a
// heartbeat request claiming 16 KiB of payload with 16 bytes present,
// then a well-formed one. A server that answers the first with more than
// was sent leaks memory; a fixed server drops it silently (RFC 6520 §4)
// and answers the second. One connection, one round trip after the hello.
func Heartbleed(ctx context.Context, dial tlsprobe.Dialer, o tlsprobe.Options, v tlsprobe.Version) (VulnResult, error) {
	o = o.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	h := newHello12(uint16(v), legacySuiteIDs(), o.ServerName)
	h.heartbeat = true
	f, err := openFlight(ctx, dial, h)
	if err != nil {
		return VulnResult{}, err
	}
	defer f.close()
	if _, ok := f.ff.hello.exts[extHeartbeat]; !ok {
		return VulnResult{Evidence: "the server does not offer the heartbeat extension"}, nil
	}
	echo := make([]byte, 16)
	_, _ = rand.Read(echo)
	probe := tlsprobe.Record{Type: tlsprobe.RecordHeartbeat, Version: uint16(v), Body: heartbeatRequest(heartbleedAsk, echo[:0])}.Marshal()
	probe = append(probe, tlsprobe.Record{Type: tlsprobe.RecordHeartbeat, Version: uint16(v), Body: heartbeatRequest(len(echo), echo)}.Marshal()...)
	if _, err := f.conn.Write(probe); err != nil {
		return VulnResult{Evidence: fmt.Sprintf("the server closed the connection before the heartbeat (%v)", err)}, nil
	}
	// Bounded: a few records at most, each at most 18 KiB.
	for i := 0; i < 4; i++ {
		a, err := f.readAnswer()
		if err != nil {
			return VulnResult{}, err
		}
		if a.record == nil || a.record.Type != tlsprobe.RecordHeartbeat {
			if a.record != nil && a.record.Type == tlsprobe.RecordHandshake {
				continue
			}
			return VulnResult{Evidence: fmt.Sprintf("the server lists heartbeat and answered the malformed request with %s", a)}, nil
		}
		typ, declared, payload, err := ParseHeartbeat(a.record.Body)
		if err != nil {
			return VulnResult{}, err
		}
		if typ != 2 {
			return VulnResult{}, fmt.Errorf("%w: heartbeat message type %d where a response was due", tlsprobe.ErrNotTLS, typ)
		}
		if declared == len(echo) && bytes.Equal(payload, echo) {
			return VulnResult{Evidence: "the server lists heartbeat, dropped the over-long request and echoed the well-formed one"}, nil
		}
		return VulnResult{Vulnerable: true, Evidence: fmt.Sprintf(
			"a heartbeat request with 0 payload bytes claiming %d was answered with a %d-byte record declaring %d bytes of payload",
			heartbleedAsk, len(a.record.Body), declared)}, nil
	}
	return VulnResult{}, fmt.Errorf("%w: no heartbeat response among the first 4 records", tlsprobe.ErrNotTLS)
}
