package check

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
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

// variantInjection runs the folder's command-injection variant v on a
// fresh plaintext session; it returns the verdict and, when the
// pipelined request was executed, the evidence.
func (c *run) variantInjection(ctx context.Context, v *registry.InjectionVariant) (verdict, evidence string) {
	ctx, cancel := context.WithTimeout(ctx, 3*c.o.Timeout)
	defer cancel()
	p, err := c.dialPlain(ctx)
	if err != nil {
		return "error: " + err.Error(), ""
	}
	defer p.Close()
	return v.Run(p, func() (io.Reader, error) {
		// What the session buffered goes to TLS first: a server waits
		// for the ClientHello, so it is nothing, but it is not lost.
		tc := tls.Client(bufferedConn{p.conn, p.br}, c.clientConfig().TLSConfig)
		_ = tc.SetDeadline(time.Now().Add(c.o.Timeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		_ = tc.SetReadDeadline(time.Now().Add(min(injectionWait, c.o.Timeout)))
		return tc, nil
	})
}

// bufferedConn reads a connection through its session's buffer.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.br.Read(p) }
