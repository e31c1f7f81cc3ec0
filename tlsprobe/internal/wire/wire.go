// Package wire holds what the ClientHello prober (tlsprobe) and the TLS 1.2
// client (tlsprobe/active) share below the record layer: the two error
// values every probe result is judged by, and how a connection's hang-ups
// and deadlines are read.
package wire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"
)

// Errors that are answers, not failures; tlsprobe re-exports them.
var (
	// ErrDeclined: the server answered with an alert or hung up right after
	// the ClientHello — the offer is not accepted.
	ErrDeclined = errors.New("offer declined")
	// ErrNotTLS: the server's answer is not a TLS record.
	ErrNotTLS = errors.New("answer is not TLS")
)

// IsReset is true for a connection the peer reset or closed under a write.
func IsReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNABORTED)
}

// DeclinedIfReset treats a hang-up right after the ClientHello as a refusal:
// many servers close instead of sending an alert.
func DeclinedIfReset(err error) error {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		return fmt.Errorf("no answer to the ClientHello: %w", err)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), IsReset(err):
		return fmt.Errorf("%w: connection closed (%v)", ErrDeclined, err)
	}
	return err
}

// Bind makes ctx's deadline and cancellation conn's: a read or write
// blocked on conn returns when ctx ends. The caller calls stop when done
// with conn under ctx.
func Bind(ctx context.Context, conn net.Conn) (stop func() bool) {
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	return context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
}

// SigAlgs is the signature_algorithms list both ClientHello builders
// offer (RFC 8446 §4.2.3): broad, so no server declines over it.
var SigAlgs = []uint16{0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203, 0x0201, 0x0807}

// SplitHandshake splits the first handshake message (its 4-byte header
// included) off buf, the one reassembly step of every flight reader. n is
// the message's declared body length, -1 while buf is shorter than a
// header; msg is nil until all of it is in buf. The caller bounds n. msg's
// capacity ends with it, so appending to rest never overwrites it.
func SplitHandshake(buf []byte) (msg, rest []byte, n int) {
	if len(buf) < 4 {
		return nil, buf, -1
	}
	n = int(buf[1])<<16 | int(buf[2])<<8 | int(buf[3])
	if len(buf) < 4+n {
		return nil, buf, n
	}
	return buf[: 4+n : 4+n], buf[4+n:], n
}
