package check

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	_ "github.com/starttls-go/starttls/internal/proto/all"
	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/wire"
)

// The probes' commands and judges come from each protocol's folder
// (internal/proto/NAME/probes.go) through internal/proto/registry; these
// maps are views of it by base protocol, built once.
var (
	injectionProbes     = probeTable(func(p registry.Probes) (string, bool) { return p.Injection, p.Injection != "" })
	sentinels           = probeTable(func(p registry.Probes) (string, bool) { return p.Sentinel, p.Sentinel != "" })
	upgradeNames        = probeTable(func(p registry.Probes) (string, bool) { return p.UpgradeName, p.UpgradeName != "" })
	pipelinedNames      = probeTable(func(p registry.Probes) (string, bool) { return p.PipelinedName, p.PipelinedName != "" })
	unsolicitedAfterTLS = probeTable(func(p registry.Probes) (func(string) bool, bool) { return p.AfterTLS, p.AfterTLS != nil })
	// binaryProbes read the answer as bytes and tell whether it shows the
	// pipelined request was executed.
	binaryProbes = probeTable(func(p registry.Probes) (func([]byte) bool, bool) { return p.Executed, p.Executed != nil })
)

// probeTable maps every registered base protocol for which field reports
// a value to that value.
func probeTable[T any](field func(registry.Probes) (T, bool)) map[starttls.Protocol]T {
	m := map[starttls.Protocol]T{}
	for _, name := range registry.Names() {
		if v, ok := field(registry.Lookup(name).Probes); ok {
			m[starttls.Protocol(name)] = v
		}
	}
	return m
}

// probesOf returns the registered probes of base protocol p (zero when
// none are registered).
func probesOf(p starttls.Protocol) registry.Probes {
	if d := registry.Lookup(string(p)); d != nil {
		return d.Probes
	}
	return registry.Probes{}
}

// connProbesOf returns what the folder of base protocol p registered for
// check beyond the other probes (zero when nothing).
func connProbesOf(p starttls.Protocol) registry.ConnProbes {
	if more := probesOf(p).Conn; more != nil {
		return *more
	}
	return registry.ConnProbes{}
}

// injectionWait is how long the probe waits for an answer inside TLS; a
// vulnerable server answers at once, so this only bounds the clean case.
const injectionWait = 1500 * time.Millisecond

func (c *run) commandInjection(ctx context.Context) {
	c.commandInjectionOnce(ctx)
	switch v := connProbesOf(c.info.Base).Injection; {
	case v != nil:
		c.moreInjection(v.Label, func() (string, string) { return c.variantInjection(ctx, v) })
	case partialProbes[c.info.Base] != "":
		c.moreInjection("partial line", func() (string, string) { return c.partialLine(ctx) })
	}
}

// moreInjection runs a variant of the command-injection probe and folds
// its verdict into the probe's: one fail fails it.
func (c *run) moreInjection(label string, variant func() (verdict, evidence string)) {
	start := time.Now()
	v, evidence := variant()
	if evidence != "" {
		c.add(newFinding("command-injection", evidence))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	first := c.r.StartTLS.Probes["command-injection"]
	if v == "fail" || first == "fail" {
		c.r.StartTLS.Probes["command-injection"] = "fail"
	} else {
		c.r.StartTLS.Probes["command-injection"] = first + "; " + label + ": " + v
	}
	c.r.Timings.ProbesMS["command-injection"] += ms(time.Since(start))
}

func (c *run) commandInjectionOnce(ctx context.Context) {
	start := time.Now()
	probe, ok := injectionProbes[c.info.Base]
	if !ok {
		c.verdict("command-injection", "n/a", 0)
		return
	}
	cfg := c.clientConfig()
	cfg.PipelineAfterUpgrade = []byte(probe)
	var rec *recordingConn
	more := connProbesOf(c.info.Base)
	if more.PlaintextAnswer != nil {
		cfg.Dial = c.recordingDial(&rec)
	}
	conn, err := starttls.Dial(ctx, c.t.Protocol, c.t.Addr(), cfg)
	if err != nil && rec != nil {
		// Without a go-ahead (MySQL) the handshake fails when the server
		// answers the pipelined request in plaintext instead of starting TLS.
		if what, executed := more.PlaintextAnswer(rec.received()); executed {
			c.verdict("command-injection", "fail", time.Since(start))
			c.add(newFinding("command-injection", fmt.Sprintf("sent %s and %s in one write; instead of starting TLS the server answered it %s", upgradeNames[c.info.Base], pipelinedNames[c.info.Base], what)))
			return
		} else if what != "" {
			c.verdict("command-injection", "pass ("+string(starttls.StatusOf(err))+", "+what+")", time.Since(start))
			return
		}
	}
	if err != nil {
		// Closing, refusing or answering in plaintext before the go-ahead all
		// keep the pipelined command out of TLS.
		c.verdict("command-injection", "pass ("+string(starttls.StatusOf(err))+")", time.Since(start))
		return
	}
	defer conn.Close()
	wait := min(injectionWait, c.o.Timeout)
	_ = conn.SetReadDeadline(time.Now().Add(wait))
	var got []string
	after := "before sending anything"
	switch executed := binaryProbes[c.info.Base]; {
	case executed != nil:
		buf := make([]byte, 4096)
		n, _ := io.ReadAtLeast(conn, buf, 1)
		if n > 0 && !executed(buf[:n]) {
			c.verdict("command-injection", "pass (refused inside TLS: "+printable(buf[:min(n, 120)])+")", time.Since(start))
			return
		}
		switch {
		case n > 0 && more.Describe != nil:
			got = append(got, more.Describe(buf[:n]))
		case n > 0:
			got = append(got, fmt.Sprintf("%d bytes: %s", n, printable(buf[:min(n, 120)])))
		}
	case sendSentinel(conn, c.info.Base):
		var how string
		got, how = firstReplyIfPipelined(conn.ReadLine, c.info.Base, len(conn.CapabilitiesBefore) > 0, unsolicitedAfterTLS[c.info.Base])
		if len(got) == 0 {
			c.verdict("command-injection", "pass ("+how+")", time.Since(start))
			return
		}
		after = fmt.Sprintf("before answering %q sent inside TLS", strings.TrimSpace(sentinels[c.info.Base]))
	case more.OwnResponse != nil:
		if more.OwnResponse(conn) == nil {
			got = linesUntilDeadline(conn, nil)
		}
	default:
		got = linesUntilDeadline(conn, unsolicitedAfterTLS[c.info.Base])
	}
	if len(got) == 0 {
		c.verdict("command-injection", "pass", time.Since(start))
		return
	}
	c.verdict("command-injection", "fail", time.Since(start))
	if name, ok := upgradeNames[c.info.Base]; ok {
		answer := strings.Join(got, " ")
		if more.QuoteAnswer {
			answer = fmt.Sprintf("%q", strings.Join(got, "\r\n"))
		}
		c.add(newFinding("command-injection", fmt.Sprintf("sent %s and %s in one write; inside TLS, %s, the server answered %s",
			name, pipelinedNames[c.info.Base], after, answer)))
		return
	}
	c.add(newFinding("command-injection", fmt.Sprintf("sent %q in one segment; inside TLS, %s, the server answered %q",
		"STARTTLS\r\n"+probe, after, strings.Join(got, "\r\n"))))
}

// linesUntilDeadline returns up to 3 lines the server sends inside TLS
// on its own (after the unsolicited ones it may send).
func linesUntilDeadline(conn *starttls.Conn, unsolicited func(string) bool) []string {
	var got []string
	for i := 0; i < 50 && len(got) < 3; i++ {
		line, err := conn.ReadLine()
		if err != nil {
			break
		}
		if unsolicited != nil {
			if unsolicited(line) {
				unsolicited = nil
			}
			continue
		}
		got = append(got, line)
	}
	return got
}

// Sentinels (the map sentinels above): a command the probe sends itself inside TLS right after the
// handshake, so that a safe server's answer ends the wait at once (one
// round trip instead of injectionWait). Its reply differs from that of
// the pipelined probe, so the first reply tells which one the server
// executed first.
func sendSentinel(conn *starttls.Conn, p starttls.Protocol) bool {
	cmd, ok := sentinels[p]
	if !ok {
		return false
	}
	_, err := io.WriteString(conn, cmd)
	return err == nil
}

// firstReplyIfPipelined reads inside TLS after the sentinel; it returns
// the first reply when that answers the pipelined probe, or nil and how
// the probe was found safe. An undecided first reply followed by a
// second one was the probe's; alone until the deadline, it was ours.
// capa says the server answered CAPA before TLS (POP3).
func firstReplyIfPipelined(readLine func() (string, error), p starttls.Protocol, capa bool, unsolicited func(string) bool) ([]string, string) {
	var first []string
	replies := 0
	for i := 0; i < 50; i++ {
		line, err := readLine()
		if err != nil {
			if replies == 0 {
				return nil, "no reply inside TLS"
			}
			return nil, "one reply inside TLS: ours"
		}
		if unsolicited != nil {
			if unsolicited(line) {
				unsolicited = nil
			}
			continue
		}
		switch judgeSentinel(p, line, replies, capa) {
		case sentinelOurs:
			return nil, "answered our own command first"
		case sentinelPipelined:
			return append(first, line), ""
		case sentinelIgnore:
			continue
		}
		if replies == 0 {
			first = append(first, line)
		}
		if replyEnds(p, line) {
			if replies++; replies == 2 {
				return first, ""
			}
		}
	}
	return nil, "no decision in 50 lines"
}

// What a line read inside TLS says about the sentinel.
const (
	sentinelUndecided = registry.Undecided
	sentinelOurs      = registry.Ours      // the first reply answers the sentinel: the pipelined probe was dropped
	sentinelPipelined = registry.Pipelined // the first reply answers the pipelined probe: executed
	sentinelIgnore    = registry.Ignore    // not a reply (IRC notices, IMAP untagged data)
)

// judgeSentinel classifies line, read after replies complete replies,
// with the judge p's folder registered. capa says the server answered
// CAPA before TLS (POP3).
func judgeSentinel(p starttls.Protocol, line string, replies int, capa bool) int {
	if judge := probesOf(p).Judge; judge != nil {
		return judge(line, replies, capa)
	}
	return sentinelUndecided
}

// replyEnds reports whether line is the last line of a reply.
func replyEnds(p starttls.Protocol, line string) bool {
	if ends := probesOf(p).ReplyEnds; ends != nil {
		return ends(line)
	}
	return true
}

// printable shows binary evidence with its text parts readable.
var printable = wire.Dotted

// upgradeAgain asks for STARTTLS a second time inside TLS.
func (c *run) upgradeAgain(ctx context.Context, conn *starttls.Conn) {
	start := time.Now()
	if why := connProbesOf(c.info.Base).NoSecondUpgrade; why != "" {
		c.verdict("starttls-after-tls", "n/a ("+why+")", 0)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, c.afterTLSWait())
	defer cancel()
	err := conn.UpgradeAgain(wctx)
	switch {
	case err == nil:
		c.verdict("starttls-after-tls", "fail", time.Since(start))
		if !c.has("starttls-after-tls") {
			c.add(newFinding("starttls-after-tls", "inside TLS the server accepted a second STARTTLS"))
		}
	case errors.Is(err, starttls.ErrRefused):
		v := "pass"
		if c.has("starttls-after-tls") {
			v = "fail (advertised, refused)"
		}
		c.verdict("starttls-after-tls", v, time.Since(start))
	default:
		c.verdict("starttls-after-tls", "error: "+err.Error(), time.Since(start))
	}
}

// afterTLSWait bounds the wait for the answer to a second STARTTLS: ten
// times what the main session's greeting, dialogue and handshake took, at
// least 500 ms, at most the phase timeout. A server that answered those in
// D answers one more command well within 10·D; a silent one (a TLS relay
// such as openssl s_server behind a front never answers) would otherwise
// hold the whole check for the phase timeout, for an "error" verdict that
// a shorter wait gives as well.
func (c *run) afterTLSWait() time.Duration {
	t := c.r.Timings
	d := time.Duration((t.GreetingMS + t.DialogueMS + t.HandshakeMS) * 10 * float64(time.Millisecond))
	return min(c.o.Timeout, max(500*time.Millisecond, d))
}

// dialer returns connections positioned for a raw ClientHello.
// dialTCP opens a probe's plain connection, through Options.Dial when set.
func (c *run) dialTCP(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.o.Timeout)
	defer cancel()
	if c.o.Dial != nil {
		return c.o.Dial(ctx, "tcp", c.t.Addr())
	}
	d := net.Dialer{LocalAddr: c.o.LocalAddr}
	return d.DialContext(ctx, "tcp", c.t.Addr())
}

func (c *run) dialer() func(ctx context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		raw, _, err := starttls.Negotiate(ctx, c.t.Protocol, c.t.Addr(), c.clientConfig())
		return raw, err
	}
}
