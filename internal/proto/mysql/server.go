package mysql

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverVersion is the server version our handshake announces.
const serverVersion = "8.0.0-starttls-go"

// serverHalf is MySQL's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		Greet: func(s dialog.Server) error {
			scramble := make([]byte, 20)
			_, _ = rand.Read(scramble)
			// The scramble bytes must not be NUL (clients read C strings).
			for i := range scramble {
				scramble[i] = 1 + scramble[i]%126
			}
			var id [4]byte
			_, _ = rand.Read(id[:])
			connID := binary.LittleEndian.Uint32(id[:]) & 0x7fffffff
			s.SetGreeting(serverVersion)
			s.SetCapabilitiesBefore(dialog.Capabilities{"CONNECTION-ID " + strconv.FormatUint(uint64(connID), 10),
				"AUTH-PLUGIN " + NativePassword, "AUTH-DATA " + hex.EncodeToString(scramble)})
			return s.SendRaw(HandshakePacket(serverVersion, connID, scramble), "handshake v10 "+serverVersion)
		},
		Serve: func(s dialog.Server) (dialog.Action, error) {
			seq, p, err := ReadPacket(s.ReadFull, MaxResponse)
			if err != nil {
				return 0, s.IOErr(err)
			}
			if seq != 1 {
				return 0, serverRefuse(s, dialog.ErrProtocol, seq+1, 1156, "08S01", "Got packets out of order", true,
					fmt.Sprintf("client packet with sequence id %d", seq))
			}
			r, err := ParseResponse(p)
			if err != nil {
				s.Record(false, "malformed client response")
				return 0, serverRefuse(s, dialog.ErrProtocol, 2, 1043, "08S01", "Bad handshake", len(p) >= 4 &&
					binary.LittleEndian.Uint32(p)&ClientProtocol41 != 0, err.Error())
			}
			if r.Capabilities&ClientSSL != 0 {
				if len(p) != SSLRequestLen {
					// CLIENT_SSL on a full response: the client claims TLS
					// while sending its credentials in plaintext.
					s.Record(false, "HandshakeResponse with CLIENT_SSL")
					return 0, serverRefuse(s, dialog.ErrProtocol, 2, 1043, "08S01", "Bad handshake", true,
						"HandshakeResponse with CLIENT_SSL but no TLS")
				}
				s.Record(false, fmt.Sprintf("SSLRequest caps 0x%08x", r.Capabilities))
				return dialog.StartTLS, serverKeepClientHello(s)
			}
			s.Record(false, fmt.Sprintf("HandshakeResponse user=%q", r.User))
			s.SetClientName(r.User)
			if s.Config().Optional {
				s.SetPending(Packet(seq, p))
				return dialog.Handoff, nil
			}
			return 0, serverRefuse(s, dialog.ErrRefused, 2, 3159, "HY000",
				"Connections using insecure transport are prohibited while --require_secure_transport=ON.", true,
				"plaintext HandshakeResponse; SSL required")
		},
	}
}

// serverRefuse sends an ERR packet and returns the error that ends the session.
func serverRefuse(s dialog.Server, cond error, seq byte, code uint16, state, msg string, proto41 bool, detail string) error {
	if err := s.SendRaw(ErrPacket(seq, code, state, msg, proto41), "ERR "+strconv.Itoa(int(code))+" "+msg); err != nil {
		return err
	}
	return s.Fail(fmt.Errorf("%w: %s", cond, strings.TrimSpace(detail)), "")
}

// serverKeepClientHello handles what the reader buffered behind the
// SSLRequest. There is no go-ahead in MySQL: clients send their ClientHello
// right behind the SSLRequest, often in the same segment, so bytes that
// start a TLS handshake record are the TLS session, not an injection. They
// are moved from the plaintext reader into the connection the handshake
// reads. Anything else stays buffered, for the generic injection check.
func serverKeepClientHello(s dialog.Server) error {
	n := s.Reader().Buffered()
	if n == 0 {
		return nil
	}
	b := s.Reader().Pending()
	if b[0] != 0x16 || (len(b) > 1 && b[1] != 0x03) {
		return nil
	}
	pre := make([]byte, n)
	if err := s.Reader().ReadFull(pre); err != nil {
		return s.IOErr(err)
	}
	s.WrapRaw(func(c net.Conn) net.Conn { return &serverPrefixConn{Conn: c, pre: pre} })
	return nil
}

// serverPrefixConn reads pre before the connection.
type serverPrefixConn struct {
	net.Conn
	pre []byte
}

func (c *serverPrefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}
