package tlsprobe

import (
	"bytes"
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// helloKeyExchangeOver runs HelloKeyExchange against a peer that reads the
// ClientHello and answers with answer, then hangs up.
func helloKeyExchangeOver(t *testing.T, answer []byte) (*ServerHello, uint16, error) {
	t.Helper()
	client, server := net.Pipe()
	defer client.Close()
	go func() {
		defer server.Close()
		_ = server.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := ReadRecord(server); err != nil {
			return
		}
		_, _ = server.Write(answer)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return HelloKeyExchange(ctx, client, helloFor(TLS12))
}

// HelloKeyExchange reads through the same bounded flight reader as
// ReadFirstFlight: the curve of a well-formed flight, split across
// records, comes back; a flood of tiny records stops at the same bound.
func TestHelloKeyExchangeFlight(t *testing.T) {
	rnd := bytes.Repeat([]byte{1}, 32)
	sh := serverHelloBody(0x0303, rnd, nil, 0xC02F)
	flight := testFlight(7, sh, ecdheSKE(0x0017), hsMsg(hsServerHelloDone, nil))
	got, curve, err := helloKeyExchangeOver(t, flight)
	if err != nil || got == nil || got.Suite != 0xC02F || curve != 0x0017 {
		t.Fatalf("HelloKeyExchange = %+v, %#x, %v; want suite 0xC02F, curve 0x0017", got, curve, err)
	}

	_, _, err = helloKeyExchangeOver(t, record(21, []byte{2, 40}))
	if !errors.Is(err, ErrDeclined) {
		t.Fatalf("alert: err = %v, want ErrDeclined", err)
	}

	dribble := append(record(22, []byte{11, 0x01, 0x86, 0xa0}), bytes.Repeat(record(22, []byte{0}), maxFlightRecords+5)...)
	_, _, err = helloKeyExchangeOver(t, append(testFlight(16384, sh), dribble...))
	if !errors.Is(err, ErrFlightTooLarge) || !errors.Is(err, ErrNotTLS) {
		t.Fatalf("dribble: err = %v, want ErrFlightTooLarge", err)
	}
}
