package active

import (
	"bytes"
	"context"
	"net"
	"testing"
	"time"

	"github.com/starttls-go/starttls/tlsprobe"
)

// scriptedConn replays a server's bytes and discards what the client writes.
type scriptedConn struct {
	net.Conn // nil: only the methods below are used
	r        *bytes.Reader
}

func (c *scriptedConn) Read(p []byte) (int, error)         { return c.r.Read(p) }
func (c *scriptedConn) Write(p []byte) (int, error)        { return len(p), nil }
func (c *scriptedConn) Close() error                       { return nil }
func (c *scriptedConn) SetDeadline(time.Time) error        { return nil }
func (c *scriptedConn) SetReadDeadline(t time.Time) error  { return nil }
func (c *scriptedConn) SetWriteDeadline(t time.Time) error { return nil }

func rec(typ uint8, body ...byte) []byte {
	return tlsprobe.Record{Type: typ, Version: 0x0303, Body: body}.Marshal()
}

// serverFlightSeed is a plausible first flight: ServerHello with
// heartbeat and renegotiation_info, an empty Certificate, ServerHelloDone.
func serverFlightSeed() []byte {
	sh := []byte{3, 3}
	sh = append(sh, make([]byte, 32)...)
	sh = append(sh, 0, 0x00, 0x9C, 0, 0, 9, 0, 15, 0, 1, 1, 0xff, 0x01, 0, 1, 0)
	msg := append([]byte{2, 0, 0, byte(len(sh))}, sh...)
	msg = append(msg, 11, 0, 0, 3, 0, 0, 0, 14, 0, 0, 0)
	return rec(tlsprobe.RecordHandshake, msg...)
}

// FuzzServerFlight feeds arbitrary server bytes to every reader of the
// active probes: none may panic or loop, whatever arrives.
func FuzzServerFlight(f *testing.F) {
	f.Add(serverFlightSeed())
	f.Add(append(serverFlightSeed(), rec(tlsprobe.RecordHeartbeat, 2, 0x40, 0, 1, 2, 3)...))
	f.Add(append(serverFlightSeed(), rec(tlsprobe.RecordAlert, 2, 10)...))
	f.Add(rec(tlsprobe.RecordHandshake, 4, 0, 0, 6, 0, 0, 0x1c, 0x20, 0, 0))
	f.Add(rec(tlsprobe.RecordChangeCipherSpec, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		dial := func(context.Context) (net.Conn, error) { return &scriptedConn{r: bytes.NewReader(data)}, nil }
		_, _ = Handshake12(ctx, &scriptedConn{r: bytes.NewReader(data)}, Config12{Tickets: true})
		_, _ = Heartbleed(ctx, dial, tlsprobe.Options{}, tlsprobe.TLS12)
		_, _ = CCSInjection(ctx, dial, tlsprobe.Options{}, tlsprobe.TLS12)
		_, _ = robotTry(ctx, dial, tlsprobe.Options{Timeout: time.Second}, tlsprobe.TLS12, []uint16{0x009C}, robotVariants[0])
		rc := &recordConn{conn: &scriptedConn{r: bytes.NewReader(data)}}
		_, _, _ = readFirstFlight(rc, []byte{1})
	})
}

// FuzzParsers covers the message parsers one by one.
func FuzzParsers(f *testing.F) {
	f.Add([]byte{4, 0, 0, 8, 0, 0, 0x1c, 0x20, 0, 2, 0xAA, 0xBB})
	f.Add([]byte{2, 0, 16, 1, 2, 3})
	f.Add(serverFlightSeed()[5:])
	f.Fuzz(func(t *testing.T, data []byte) {
		if life, ticket, err := ParseNewSessionTicket(data); err == nil && len(data) != 4+4+2+len(ticket) {
			t.Fatalf("ticket of %d bytes (lifetime %d) from a %d-byte message", len(ticket), life, len(data))
		}
		if _, declared, payload, err := ParseHeartbeat(data); err == nil && len(payload) > declared {
			t.Fatalf("payload %d > declared %d", len(payload), declared)
		}
		_, _ = parseServerHello12(data)
		_, _ = parseCertificateMsg(data)
		_, _, _ = ecdheExchange(data)
		_, _ = tlsprobe.ParseAlert(data)
		_, _ = tlsprobe.ReadRecord(bytes.NewReader(data))
	})
}
