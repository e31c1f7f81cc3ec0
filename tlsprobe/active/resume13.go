package active

import (
	"context"
	"crypto/tls"
	"fmt"
	"sync"
	"time"

	"github.com/starttls-go/starttls/tlsprobe"
)

// ticketWait is how long the TLS 1.3 probe reads after the handshake for
// the server's NewSessionTicket, beyond the handshake's own duration:
// servers send it right after the client's Finished, but a STARTTLS
// server then waits for the client to speak, so the read ends by deadline.
const ticketWait = 100 * time.Millisecond

// ProbeResumption13 measures TLS 1.3 ticket resumption with crypto/tls
// (RFC 8446 §4.6.1): a handshake, a short read for the NewSessionTicket,
// then a second handshake offering it. Two connections, one after the
// other. It reports whether a ticket came and whether it was taken; the
// lifetime is not exposed by crypto/tls.
func ProbeResumption13(ctx context.Context, dial tlsprobe.Dialer, o tlsprobe.Options) (issued, resumed bool, err error) {
	o = o.WithDefaults()
	cache := &oneSession{}
	cfg := &tls.Config{
		InsecureSkipVerify: true, // a probe: the check judges the certificate elsewhere
		ServerName:         o.ServerName,
		MinVersion:         tls.VersionTLS13,
		ClientSessionCache: cache,
	}
	handshake := func() (bool, error) {
		ctx, cancel := context.WithTimeout(ctx, o.Timeout)
		defer cancel()
		conn, err := dial(ctx)
		if err != nil {
			return false, fmt.Errorf("dial: %w", err)
		}
		defer conn.Close()
		start := time.Now()
		tc := tls.Client(conn, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return false, err
		}
		if tc.ConnectionState().DidResume {
			return true, nil
		}
		// Post-handshake messages are processed by Read; the application
		// data a server may send (a greeting) is read and dropped.
		_ = tc.SetReadDeadline(time.Now().Add(time.Since(start) + ticketWait))
		buf := make([]byte, 512)
		for i := 0; i < 8 && !cache.has(); i++ {
			if _, err := tc.Read(buf); err != nil {
				break // the deadline, most often: no ticket came
			}
		}
		return false, nil
	}
	if _, err := handshake(); err != nil {
		return false, false, err
	}
	if !cache.has() {
		return false, false, nil
	}
	resumed, err = handshake()
	return true, resumed, err
}

// oneSession is a ClientSessionCache of one session under any key: the
// probe talks to one server, whatever name crypto/tls files it under
// (the SNI, or the address when there is none).
type oneSession struct {
	mu sync.Mutex
	cs *tls.ClientSessionState
}

func (c *oneSession) Get(string) (*tls.ClientSessionState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cs, c.cs != nil
}

func (c *oneSession) Put(_ string, cs *tls.ClientSessionState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cs = cs
}

func (c *oneSession) has() bool {
	_, ok := c.Get("")
	return ok
}
