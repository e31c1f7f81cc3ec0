package check

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// recordingConn keeps the first bytes the server sent, so that a failed
// dialogue or handshake can still be judged on what the server said.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

const recordLimit = 8192

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	if room := recordLimit - len(r.got); room > 0 {
		r.got = append(r.got, p[:min(n, room)]...)
	}
	r.mu.Unlock()
	return n, err
}

func (r *recordingConn) received() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.got...)
}

// recordingDial wraps the probe's TCP connection in a recordingConn.
func (c *run) recordingDial(rec **recordingConn) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := c.dialTCP(ctx)
		if err != nil {
			return nil, err
		}
		*rec = &recordingConn{Conn: conn}
		return *rec, nil
	}
}

// pgGSSENCRequest is the 8-byte GSSENCRequest packet.
var pgGSSENCRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}

// pgSSLRequest is the 8-byte SSLRequest packet.
var pgSSLRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// postgresAfterGSS repeats the PostgreSQL injection probe on the path a
// libpq client with gssencmode=prefer takes: GSSENCRequest, 'N', then
// SSLRequest with a StartupMessage in the same write. The server reaches
// its SSL code a second time, with the GSS state set, and must still
// refuse the plaintext it buffered (security catalogue §(a)2). It
// returns the verdict and, when the startup message was executed, the
// evidence.
func (c *run) postgresAfterGSS(ctx context.Context) (verdict, evidence string) {
	ctx, cancel := context.WithTimeout(ctx, 3*c.o.Timeout)
	defer cancel()
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return "error: " + err.Error(), ""
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(c.o.Timeout))
	one := func() (byte, error) {
		var b [1]byte
		_, err := io.ReadFull(raw, b[:])
		return b[0], err
	}
	if _, err := raw.Write(pgGSSENCRequest); err != nil {
		return "error: " + err.Error(), ""
	}
	switch b, err := one(); {
	case err != nil:
		return "n/a (GSSENCRequest: " + err.Error() + ")", ""
	case b == 'G':
		return "n/a (the server offers GSS encryption)", ""
	case b != 'N':
		// Servers before PostgreSQL 12 do not know GSSENCRequest.
		return fmt.Sprintf("n/a (GSSENCRequest answered 0x%02x)", b), ""
	}
	probe := injectionProbes["postgres"]
	if _, err := raw.Write(append(append([]byte{}, pgSSLRequest...), probe...)); err != nil {
		return "error: " + err.Error(), ""
	}
	switch b, err := one(); {
	case err != nil:
		return "pass (" + err.Error() + " after SSLRequest)", ""
	case b != 'S':
		return fmt.Sprintf("pass (SSLRequest answered 0x%02x)", b), ""
	}
	tc := tls.Client(raw, c.clientConfig().TLSConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return "pass (handshake: " + err.Error() + ")", ""
	}
	_ = tc.SetReadDeadline(time.Now().Add(min(injectionWait, c.o.Timeout)))
	buf := make([]byte, 4096)
	n, _ := io.ReadAtLeast(tc, buf, 1)
	switch {
	case n == 0:
		return "pass", ""
	case !binaryProbes["postgres"](buf[:n]):
		return "pass (refused inside TLS: " + printable(buf[:min(n, 120)]) + ")", ""
	}
	return "fail", fmt.Sprintf("after GSSENCRequest answered 'N', sent SSLRequest and a StartupMessage in one write; inside TLS the server answered %d bytes: %s",
		n, printable(buf[:min(n, 120)]))
}
