package clienttest

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// judge turns what the server saw into a verdict with evidence.
func judge(base starttls.Protocol, s Scenario, ob *observation) (Verdict, string) {
	ct := clientTestOf(base)
	pers := ct.Line
	if pers == nil {
		pers = &registry.CTLine{} // a dialect: no capability verbs, nothing re-sent
	}
	if !ob.connected {
		return Inconclusive, "the client never connected"
	}
	var own, referred, inTLS []Line
	for _, l := range ob.lines {
		switch {
		case l.Referred:
			referred = append(referred, l)
		case l.TLS:
			inTLS = append(inTLS, l)
			own = append(own, l)
		default:
			own = append(own, l)
		}
	}
	if leak, ok := firstLeak(ct, referred, false); ok {
		return Fail, fmt.Sprintf("followed the referral to a server without STARTTLS and sent %q there in plaintext", redact(leak))
	}
	if leak, ok := firstLeak(ct, own, false); ok && s.kind != kindControl {
		return Fail, fmt.Sprintf("sent %q in plaintext", redact(leak))
	}
	done := ob.handshake == "completed"
	switch s.kind {
	case kindControl:
		if done && len(inTLS) > 0 {
			return Pass, fmt.Sprintf("upgraded and sent %d commands inside TLS", len(inTLS))
		}
		if leak, ok := firstLeak(ct, own, false); ok && !done {
			return Fail, fmt.Sprintf("did not complete STARTTLS with an honest server (handshake %s) and sent %q in plaintext", ob.handshake, redact(leak))
		}
		return Fail, "did not complete STARTTLS with an honest server (handshake " + ob.handshake + ")"
	case kindStrip:
		if done {
			return Pass, "upgraded anyway"
		}
		return Pass, "sent nothing sensitive in plaintext (commands: " + plainVerbs(ct, own) + ")"
	case kindInject:
		if d := ct.Dialect; d != nil && d.InjectMarker != "" {
			for _, l := range own {
				if strings.Contains(l.Text, d.InjectMarker) {
					return Fail, fmt.Sprintf("acted on the injected bytes: echoed their token %s in %q", d.InjectMarker, redact(l.Text))
				}
			}
			if done {
				return Pass, "ignored the injected bytes"
			}
		}
		if !done {
			return Pass, "did not complete TLS after the injected bytes (handshake " + ob.handshake + ")"
		}
		if len(inTLS) == 0 {
			return Pass, "completed the handshake but sent nothing inside TLS"
		}
		var early []string
		for _, l := range inTLS {
			if ob.firstTLSSent.IsZero() || l.AtMS < ms(ob.firstTLSSent.Sub(ob.start)) {
				early = append(early, l.Text)
			}
		}
		if pers.CapsAfterTLS != "" {
			// The server speaks first inside TLS: a command that needs the
			// capabilities (not a NOOP or CAPABILITY to resynchronise)
			// before the server sent its own answers the injected list.
			for _, l := range early {
				_, verb, _ := splitCommand(ct, l)
				if verb != "NOOP" && !containsFold(pers.CapsVerbs, verb) {
					return Fail, fmt.Sprintf("acted on the injected capabilities: sent %q inside TLS before the server had sent its own", redact(l))
				}
			}
			return Pass, "ignored the injected bytes and waited for the capabilities inside TLS"
		}
		if len(early) >= 2 {
			return Fail, fmt.Sprintf("acted on the injected answer: sent %q inside TLS before the server had answered %q", redact(early[1]), redact(early[0]))
		}
		return Pass, "ignored the injected bytes and waited for the answers inside TLS"
	case kindTamper:
		if !done {
			return Pass, "did not upgrade (handshake " + ob.handshake + ")"
		}
		for _, l := range inTLS {
			_, verb, _ := splitCommand(ct, l.Text)
			if containsFold(pers.CapsVerbs, verb) {
				return Pass, fmt.Sprintf("asked for capabilities again inside TLS (%q)", l.Text)
			}
			if pers.CapsAfterTLS != "" && containsFold(ct.Leaks, verb) {
				if ob.firstTLSSent.IsZero() || l.AtMS < ms(ob.firstTLSSent.Sub(ob.start)) {
					return Fail, fmt.Sprintf("sent %q inside TLS before the server had re-sent its capabilities: it trusted the pre-TLS list", redact(l.Text))
				}
				return Pass, "waited for the capabilities the server re-sent inside TLS"
			}
			if containsFold(ct.Leaks, verb) {
				return Fail, fmt.Sprintf("sent %q inside TLS without asking for capabilities again: it trusted the pre-TLS list", redact(l.Text))
			}
		}
		return Pass, "never authenticated"
	case kindEarlyOK:
		if done {
			return Fail, "started TLS on a tagged OK that arrived before its STARTTLS command"
		}
		return Pass, "did not take the early OK as a go-ahead (handshake " + ob.handshake + ")"
	case kindCert:
		if done && len(inTLS) > 0 {
			return Fail, fmt.Sprintf("accepted the %s certificate and sent %q inside TLS", s.plan.cert, redact(inTLS[0].Text))
		}
		if done {
			return Pass, "completed the handshake but sent nothing inside TLS"
		}
		return Pass, "rejected the handshake (" + strings.TrimPrefix(ob.handshake, "failed: ") + ")"
	case kindSpoof:
		// What the client showed is judged by judgeScreen, once its output is in.
		if done && len(inTLS) > 0 {
			return Pass, "upgraded"
		}
		return Pass, "sent nothing sensitive in plaintext"
	case kindReferral:
		if len(referred) > 0 {
			return Pass, "followed the referral but sent nothing sensitive there (commands: " + plainVerbs(ct, referred) + ")"
		}
		if done {
			return Pass, "did not follow the referral; upgraded on the first server"
		}
		return Pass, "did not follow the referral (commands: " + plainVerbs(ct, own) + ")"
	}
	return Inconclusive, "unknown scenario kind"
}

func firstLeak(ct *registry.ClientTest, lines []Line, inTLS bool) (string, bool) {
	for _, l := range lines {
		if l.TLS != inTLS {
			continue
		}
		if isLeak(ct, l.Text) {
			return l.Text, true
		}
	}
	return "", false
}

func plainVerbs(ct *registry.ClientTest, lines []Line) string {
	var v []string
	for _, l := range lines {
		if l.TLS {
			continue
		}
		if strings.HasPrefix(l.Text, "\x16\x03") {
			// A client that took a refusal for a go-ahead: what follows is
			// the rest of its ClientHello, not commands.
			v = append(v, "(TLS ClientHello)")
			break
		}
		_, verb, _ := splitCommand(ct, l.Text)
		if f := strings.Fields(l.Text); ct.Dialect != nil && len(f) > 0 {
			verb = f[0]
		}
		v = append(v, verb)
	}
	if len(v) == 0 {
		return "none"
	}
	return strings.Join(v, " ")
}

// redact keeps evidence readable without printing whole credentials.
func redact(line string) string {
	f := strings.Fields(line)
	for i, w := range f {
		if len(w) > 12 && i > 0 {
			f[i] = w[:8] + "..."
		}
	}
	u := strings.ToUpper(line)
	if strings.HasPrefix(u, "PASS ") || strings.Contains(u, " LOGIN ") && len(f) >= 4 {
		f[len(f)-1] = "***"
	}
	return strings.Join(f, " ")
}

// isLeak tells whether a plaintext message carries credentials or data.
func isLeak(ct *registry.ClientTest, text string) bool {
	if ct.Leak != nil {
		return ct.Leak(text)
	}
	_, verb, _ := splitCommand(ct, text)
	return containsFold(ct.Leaks, verb)
}

// judgeScreen looks for the server's ESC byte in what the client printed
// (or, in-process, the error it returned).
func judgeScreen(out string) (Verdict, string) {
	i := strings.IndexByte(out, 0x1b)
	if i < 0 {
		return Pass, "reproduced no raw escape sequence in its output"
	}
	lo, hi := max(0, i-40), min(len(out), i+40)
	return Fail, fmt.Sprintf("reproduced the server's escape sequence raw in its output: %q", out[lo:hi])
}
