package mysql

import (
	"fmt"
	"io"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

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

func init() {
	registry.RegisterConnLogin(&registry.ConnLogin{Login: login}, "mysql")
}
