package mysql

import (
	"encoding/binary"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// MySQL as check probes it: a HandshakeResponse41 with no password
// pipelined after SSLRequest.
var probes = registry.Probes{
	Injection:     pipelinedLogin(),
	Executed:      executed,
	UpgradeName:   "SSLRequest",
	PipelinedName: "a plaintext HandshakeResponse (user starttls-check, no password, sequence id 2)",
	Conn:          loginProbes,
}

// pipelinedLogin is a HandshakeResponse41 for starttls-check with an
// empty auth response (no password is ever sent). MySQL has no go-ahead:
// after the SSLRequest the client starts TLS at once, so this packet sits
// exactly where an attacker would put one, between the SSLRequest and the
// ClientHello (security catalogue §(a)3). Its sequence id 2 is the one a
// login inside TLS carries: a server that reads it from a plaintext
// buffer after the handshake takes it for the client's real login.
func pipelinedLogin() string {
	caps := ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientSSL
	return string(Packet(2, HandshakeResponse(caps, "starttls-check")))
}

// executed judges bytes the server sent inside TLS before the client
// logged in: a correct server waits for the login, so any packet answers
// the pipelined one, unless it is an ERR that refuses it as a malformed or
// out-of-order packet rather than as a login (ER_HANDSHAKE_ERROR 1043,
// ER_NET_PACKETS_OUT_OF_ORDER 1156).
func executed(b []byte) bool {
	if len(b) < 7 || b[4] != 0xff {
		return len(b) > 0
	}
	code := binary.LittleEndian.Uint16(b[5:])
	return code != 1043 && code != 1156
}
