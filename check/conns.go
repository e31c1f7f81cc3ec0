package check

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/starttls-go/starttls"
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
	return v.Run(p, c.startTLSOn(ctx, p, min(injectionWait, c.o.Timeout)))
}

// startTLSOn returns how a folder's probe starts TLS on the plaintext
// session p once the server agreed: a handshake bounded by ctx and one
// phase timeout, then every read of the TLS session bounded by wait.
func (c *run) startTLSOn(ctx context.Context, p *plainConn, wait time.Duration) func() (registry.TLSConn, error) {
	return func() (registry.TLSConn, error) {
		// What the session buffered goes to TLS first: a server waits
		// for the ClientHello, so it is nothing, but it is not lost.
		tc := tls.Client(bufferedConn{p.conn, p.br}, c.clientConfig().TLSConfig)
		_ = tc.SetDeadline(time.Now().Add(c.o.Timeout))
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		return &plainConn{conn: tc, br: bufio.NewReaderSize(tc, maxPlainLine), timeout: wait,
			stop: func() bool { return false }, localName: p.localName}, nil
	}
}

// bufferedConn reads a connection through its session's buffer.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.br.Read(p) }

// sessionVerdicts are the verdict names of each session probe a folder
// registered (registry.SessionProbe), so that a protocol without it
// reports them "n/a".
var sessionVerdicts = func() map[string][]string {
	m := map[string][]string{}
	for _, name := range registry.Names() {
		for _, s := range connProbesOf(starttls.Protocol(name)).Sessions {
			m[s.Name] = s.Verdicts
		}
	}
	return m
}()

// probeSession is the TLS session a folder's session probe gets.
type probeSession struct {
	*starttls.Conn
	fresh func() (registry.ProbeConn, func() (registry.TLSConn, error), error)
}

func (s probeSession) Fresh() (registry.ProbeConn, func() (registry.TLSConn, error), error) {
	return s.fresh()
}

// sessionProbe runs the session probe name of the protocol's folder
// inside TLS, on a session upgraded with nothing sent after the upgrade,
// or reports its verdicts "n/a" when the folder lists none of that name.
func (c *run) sessionProbe(name string) func(context.Context) {
	return func(ctx context.Context) {
		start := time.Now()
		sessions := connProbesOf(c.info.Base).Sessions
		i := slices.IndexFunc(sessions, func(p registry.SessionProbe) bool { return p.Name == name })
		if i < 0 {
			for _, v := range sessionVerdicts[name] {
				c.verdict(v, "n/a", 0)
			}
			return
		}
		probe := sessions[i]
		cfg := c.clientConfig()
		cfg.PipelineAfterUpgrade = []byte{} // no EHLO, PBSZ or PROT of its own inside TLS
		conn, err := starttls.Dial(ctx, c.t.Protocol, c.t.Addr(), cfg)
		if err != nil {
			for _, v := range probe.Verdicts {
				c.verdict(v, "error: "+err.Error(), time.Since(start))
			}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(c.o.Timeout))
		var opened []*plainConn
		defer func() {
			for _, p := range opened {
				p.Close()
			}
		}()
		fresh := func() (registry.ProbeConn, func() (registry.TLSConn, error), error) {
			fctx, cancel := context.WithTimeout(ctx, 3*c.o.Timeout)
			p, err := c.dialPlain(fctx)
			if err != nil {
				cancel()
				return nil, nil, err
			}
			stop := p.stop
			p.stop = func() bool { defer cancel(); return stop() }
			opened = append(opened, p)
			return p, c.startTLSOn(fctx, p, c.o.Timeout), nil
		}
		probe.Run(probeSession{conn, fresh}, func(v, verdict, evidence string) {
			c.verdict(v, verdict, time.Since(start))
			start = time.Now()
			if evidence != "" {
				c.add(newFinding(v, evidence))
			}
		})
	}
}
