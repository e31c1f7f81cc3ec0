package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// A protocol that is not a verb per line with a numbered or tagged reply
// has a registry.CTDialect: a per-connection handler that frames the
// client's messages and answers them.

// multiReader reads a copy of b, then r.
func multiReader(b []byte, r io.Reader) io.Reader {
	return io.MultiReader(bytes.NewReader(append([]byte(nil), b...)), r)
}

// playDialect is play for a dialect protocol.
func playDialect(ctx context.Context, conn net.Conn, dl *registry.CTDialect, p *pki, s Scenario, ob *observation) {
	h := dl.Open(!s.plan.noOffer)
	br := bufio.NewReaderSize(conn, 16<<10)
	write := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := conn.Write(b)
		return err == nil
	}
	if !write(h.Greeting()) {
		return
	}
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := h.Frame(br)
		if err != nil {
			return
		}
		ob.add(false, m.Text)
		if !h.IsUpgrade(m) {
			reply, hangUp := h.Handle(m, false)
			if !write(reply) || hangUp {
				return
			}
			continue
		}
		if s.plan.refuse != "" || s.plan.noOffer {
			reply, hangUp := h.Refuse(s.plan.refuse, m)
			if !write(reply) || hangUp {
				return
			}
			continue
		}
		out := h.GoAhead(m)
		if s.plan.inject {
			out = append(out, h.Inject(m)...)
		}
		if !write(out) {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if b, err := br.Peek(1); err == nil && b[0] != 0x16 {
			// Not a TLS handshake record: the client took the go-ahead and
			// went on in plaintext. What it sends is judged as such.
			ob.mu.Lock()
			ob.handshake = "never started: the client went on in plaintext after the go-ahead"
			ob.mu.Unlock()
			continue
		}
		tc := serverTLS(ctx, conn, br, p, s, ob)
		if tc == nil {
			return
		}
		serveInTLS(ctx, tc, h, s, ob, m)
		return
	}
}

// serveInTLS runs the handler inside TLS. A reader goroutine frames and
// records each message as it arrives, so that the judge can tell which the
// client sent before the server's (deliberately late) first answer.
func serveInTLS(ctx context.Context, tc *tls.Conn, h registry.CTHandler, s Scenario, ob *observation, upgrade registry.CTMsg) {
	first := h.TLSStarted(upgrade)
	msgs := make(chan registry.CTMsg, 64)
	go func() {
		defer close(msgs)
		br := bufio.NewReaderSize(tc, 16<<10)
		for i := 0; i < 200; i++ {
			_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := h.Frame(br)
			if err != nil {
				return
			}
			ob.add(true, m.Text)
			select {
			case msgs <- m:
			case <-ctx.Done():
				return
			}
		}
	}()
	wrote := false
	write := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		if !wrote {
			wrote = true
			if s.kind == kindInject {
				// A client that acted on the injected bytes sends its next
				// message before this answer comes.
				select {
				case <-time.After(700 * time.Millisecond):
				case <-ctx.Done():
					return false
				}
			}
			ob.mu.Lock()
			ob.firstTLSSent = time.Now()
			ob.mu.Unlock()
		}
		_ = tc.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := tc.Write(b)
		return err == nil
	}
	if !write(first) {
		return
	}
	for i := 0; i < 200; i++ {
		var m registry.CTMsg
		select {
		case got, ok := <-msgs:
			if !ok {
				return
			}
			m = got
		case <-ctx.Done():
			return
		case <-time.After(10 * time.Second):
			return
		}
		var reply []byte
		var hangUp bool
		if h.IsUpgrade(m) {
			reply, hangUp = h.Refuse("", m) // no TLS inside TLS
		} else {
			reply, hangUp = h.Handle(m, true)
		}
		if !write(reply) || hangUp {
			return
		}
	}
}

// serverTLS runs the server side of the handshake with the scenario's
// certificate and records how it went; nil when it failed.
func serverTLS(ctx context.Context, conn net.Conn, br *bufio.Reader, p *pki, s Scenario, ob *observation) *tls.Conn {
	if n := br.Buffered(); n > 0 {
		// The start of the ClientHello, or pipelined plaintext: TLS reads it.
		peek, _ := br.Peek(n)
		conn = &prefixConn{Conn: conn, r: multiReader(peek, conn)}
	}
	cfg := p.byKind[s.plan.cert]
	if cfg == nil {
		cfg = p.byKind[certGood]
	}
	tc := tls.Server(conn, cfg.Clone())
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	err := tc.HandshakeContext(hctx)
	cancel()
	ob.mu.Lock()
	defer ob.mu.Unlock()
	if err != nil {
		ob.handshake = "failed: " + err.Error()
		return nil
	}
	ob.handshake = "completed"
	return tc
}
