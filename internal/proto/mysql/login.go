package mysql

import (
	"fmt"
	"io"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// MySQL's login before TLS, how check reads a server that answers the
// pipelined login in plaintext, and why a second upgrade tells nothing.
var loginProbes = &registry.ConnProbes{
	Login:           login,
	PlaintextAnswer: LoginPlaintextAnswer,
	Describe:        Describe,
	// An SSLRequest gets no answer even when it is honoured: silence
	// cannot tell a refusal from a go-ahead.
	NoSecondUpgrade: "MySQL has no go-ahead to observe",
}

// loginMaxPacket bounds a packet the login probe reads.
const loginMaxPacket = 1 << 16

// login sends, before TLS, the HandshakeResponse a client that never
// asked for TLS would send: user and an empty auth response (no password
// at all, so password is unused). A server that insists on TLS before
// looking at the credentials answers an ERR about insecure transport
// (MySQL 3159, MariaDB 4151); an OK means a plaintext session was opened
// (an anonymous account) (security catalogue §(a)3). "Access denied"
// does not tell: MariaDB 10.11 checks the credentials before
// require_secure_transport, so it gives a throwaway user 1045 either way.
func login(c registry.ProbeConn, user, _ string) registry.Login {
	out := registry.Login{Sent: fmt.Sprintf("a HandshakeResponse for %q with no password", user)}
	packet := func() ([]byte, error) {
		seq, p, err := ReadPacket(func(b []byte) error { _, err := io.ReadFull(c, b); return err }, loginMaxPacket)
		return Packet(seq, p), err
	}
	g, err := packet()
	if err != nil {
		out.Note = "initial handshake: " + err.Error()
		return out
	}
	h, err := ParseHandshake(g[4:])
	if err != nil {
		out.Note = err.Error()
		return out
	}
	caps := ClientProtocol41 | ClientSecureConnection | h.Capabilities&ClientPluginAuth
	if _, err := c.Write(Packet(1, HandshakeResponse(caps, user))); err != nil {
		out.Note = err.Error()
		return out
	}
	a, err := packet()
	if err != nil {
		out.Note = "answer: " + err.Error()
		return out
	}
	out.Reply = Describe(a)
	out.Result = LoginJudge(a[4:])
	if out.Result == registry.LoginUndecided {
		out.Note = fmt.Sprintf("%s answered %s", out.Sent, out.Reply)
	}
	return out
}

// LoginJudge classifies the answer (a packet's payload) to a plaintext
// HandshakeResponse, as a registry.Login result.
func LoginJudge(p []byte) int {
	if len(p) == 0 {
		return registry.LoginUndecided
	}
	switch p[0] {
	case 0x00: // OK: logged in without TLS
		return registry.LoginProcessed
	case 0xff:
	default:
		// An authentication switch or more authentication data: the
		// transport may still be refused after the exchange.
		return registry.LoginUndecided
	}
	e, err := ParseError(p)
	if err == nil && (e.Code == 3159 || e.Code == 4151 || strings.Contains(strings.ToLower(e.Message), "insecure transport")) {
		return registry.LoginRefused
	}
	return registry.LoginUndecided
}

// LoginPlaintextAnswer looks at what a MySQL server sent after its
// initial handshake packet when the client's TLS handshake failed. TLS
// records (an alert) and nothing at all are a refusal; an ERR packet is a
// refusal in plaintext; any other packet (OK, an authentication switch)
// means the server went on in plaintext with the login pipelined behind
// the SSLRequest. It returns a description and whether it was executed.
func LoginPlaintextAnswer(got []byte) (string, bool) {
	if len(got) < 4 {
		return "", false
	}
	n := int(got[0]) | int(got[1])<<8 | int(got[2])<<16
	if 4+n > len(got) {
		return "", false
	}
	rest := got[4+n:]
	switch {
	case len(rest) == 0:
		return "", false
	case loginTLSRecord(rest):
		return "a TLS record", false
	case len(rest) > 4 && rest[4] == 0xff:
		m := int(rest[0]) | int(rest[1])<<8 | int(rest[2])<<16
		if e, err := ParseError(rest[4:min(len(rest), 4+m)]); err == nil {
			return "in plaintext: " + e.String(), false
		}
		return "an ERR packet in plaintext", false
	}
	return "in plaintext: " + Describe(rest), true
}

// loginTLSRecord reports whether b starts like a TLS record (an alert or
// a handshake).
func loginTLSRecord(b []byte) bool {
	return len(b) >= 2 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 3
}
