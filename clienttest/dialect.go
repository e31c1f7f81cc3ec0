package clienttest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"time"

	"github.com/starttls-go/starttls"
)

// The protocols below are not "a verb per line with a numbered or tagged
// reply" (BER, length-prefixed packets, XML, HTTP heads) or keep state the
// line personality has no room for (IRC registration), so each has a
// dialect: a per-connection handler that frames the client's messages and
// answers them. The judge sees every message as one Line whose first word
// names it, so the verdicts are reached the same way for every protocol.

// msg is one framed client message.
type msg struct {
	text string // transcript text, the message's name first
	raw  []byte
	seq  byte // MySQL: the packet's sequence id
	// LDAP: messageID, protocolOp and extended operation name.
	id, op int
	name   string
}

// handler is one connection's scenario server for a dialect.
type handler interface {
	// frame reads the next client message, bounded in size.
	frame(r *bufio.Reader) (msg, error)
	// greeting is what the server says first (nil: the client speaks first).
	greeting() []byte
	// isUpgrade tells whether m asks for TLS.
	isUpgrade(m msg) bool
	// goAhead answers the upgrade request (nil: TLS follows without an answer).
	goAhead(m msg) []byte
	// inject is a forged answer to the client's first message inside TLS.
	inject(m msg) []byte
	// refuse answers the upgrade request when TLS is not to be had: key is
	// a refusal of the dialect, or "" when the upgrade was not offered.
	refuse(key string, m msg) (reply []byte, hangUp bool)
	// tlsStarted resets framing state and returns what the server sends
	// unasked once TLS is up (HTTP: the answer to the upgrade request).
	tlsStarted(upgrade msg) []byte
	// handle answers any other message, in plaintext or inside TLS.
	handle(m msg, inTLS bool) (reply []byte, hangUp bool)
}

// dialect describes a protocol served by handlers.
type dialect struct {
	pers *personality // leaks, for the judge
	// open returns the handler for one connection; offer is false when the
	// scenario strips the upgrade from what the server advertises.
	open func(offer bool) handler
	// refusals name the dialect's refusal answers, with their summaries.
	refusals map[string]string
	// stripSummary says what strip-capability does in this protocol.
	stripSummary string
	// noGoAhead: the server never answers the upgrade request (MySQL), so
	// there is nothing to inject after.
	noGoAhead bool
	// injectMarker, when set, is a token in the injected bytes; a client
	// that echoes it acted on them. For protocols whose clients pipeline
	// inside TLS, where counting early messages would mislead.
	injectMarker string
}

var dialects = map[starttls.Protocol]*dialect{}

func register(p starttls.Protocol, d *dialect) {
	d.pers.named = true
	dialects[p] = d
}

// personalityOf is the judge's view of a protocol.
func personalityOf(base starttls.Protocol) *personality {
	if d := dialects[base]; d != nil {
		return d.pers
	}
	return personalities[base]
}

// multiReader reads a copy of b, then r.
func multiReader(b []byte, r io.Reader) io.Reader {
	return io.MultiReader(bytes.NewReader(append([]byte(nil), b...)), r)
}

// playDialect is play for a dialect protocol.
func playDialect(ctx context.Context, conn net.Conn, base starttls.Protocol, p *pki, s Scenario, ob *observation) {
	dl := dialects[base]
	h := dl.open(!s.plan.noOffer)
	br := bufio.NewReaderSize(conn, 16<<10)
	write := func(b []byte) bool {
		if len(b) == 0 {
			return true
		}
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		_, err := conn.Write(b)
		return err == nil
	}
	if !write(h.greeting()) {
		return
	}
	for i := 0; i < 100 && ctx.Err() == nil; i++ {
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := h.frame(br)
		if err != nil {
			return
		}
		ob.add(false, m.text)
		if !h.isUpgrade(m) {
			reply, hangUp := h.handle(m, false)
			if !write(reply) || hangUp {
				return
			}
			continue
		}
		if s.plan.refuse != "" || s.plan.noOffer {
			reply, hangUp := h.refuse(s.plan.refuse, m)
			if !write(reply) || hangUp {
				return
			}
			continue
		}
		out := h.goAhead(m)
		if s.plan.inject {
			out = append(out, h.inject(m)...)
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
func serveInTLS(ctx context.Context, tc *tls.Conn, h handler, s Scenario, ob *observation, upgrade msg) {
	first := h.tlsStarted(upgrade)
	msgs := make(chan msg, 64)
	go func() {
		defer close(msgs)
		br := bufio.NewReaderSize(tc, 16<<10)
		for i := 0; i < 200; i++ {
			_ = tc.SetReadDeadline(time.Now().Add(10 * time.Second))
			m, err := h.frame(br)
			if err != nil {
				return
			}
			ob.add(true, m.text)
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
		var m msg
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
		if h.isUpgrade(m) {
			reply, hangUp = h.refuse("", m) // no TLS inside TLS
		} else {
			reply, hangUp = h.handle(m, true)
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
