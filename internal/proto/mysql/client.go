package mysql

import (
	"encoding/hex"
	"fmt"
	"strconv"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

// MySQL and MariaDB (client/server protocol, "Protocol::SSLRequest"): the
// server greets with its initial handshake packet; a client that wants TLS
// answers with a 32-byte SSLRequest (sequence id 1) carrying CLIENT_SSL,
// and both sides start TLS at once: there is no go-ahead. The client then
// sends its HandshakeResponse inside TLS (sequence id 2), which is the
// application's business, together with the scramble of the plaintext
// handshake (Conn.CapabilitiesBefore "AUTH-DATA").

// clientCapabilities lists what the handshake says, for Conn.CapabilitiesBefore.
func clientCapabilities(h Handshake) dialog.Capabilities {
	c := dialog.Capabilities(FlagNames(h.Capabilities))
	c = append(c, fmt.Sprintf("CAPABILITIES 0x%08x", h.Capabilities))
	if h.MariaDBCapabilities != 0 {
		c = append(c, fmt.Sprintf("MARIADB-CAPABILITIES 0x%08x", h.MariaDBCapabilities))
	}
	c = append(c, "CONNECTION-ID "+strconv.FormatUint(uint64(h.ConnectionID), 10),
		"CHARSET "+strconv.Itoa(int(h.Charset)))
	if h.AuthPlugin != "" {
		c = append(c, "AUTH-PLUGIN "+wire.Printable([]byte(h.AuthPlugin)))
	}
	if len(h.AuthData) > 0 {
		c = append(c, "AUTH-DATA "+hex.EncodeToString(h.AuthData))
	}
	return c
}

// clientCapNumber reads the number of a "NAME n" capability entry (0 if none).
func clientCapNumber(c dialog.Capabilities, name string) uint64 {
	args, _ := c.Args(name)
	if len(args) == 0 {
		return 0
	}
	n, _ := strconv.ParseUint(args[0], 0, 32)
	return n
}

// clientHalf is MySQL's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			seq, p, err := ReadPacket(s.ReadFull, MaxHandshake)
			if err != nil {
				return s.IOErr(err)
			}
			if seq != 0 {
				return s.Failf(dialog.ErrProtocol, "", "initial handshake with sequence id %d", seq)
			}
			if len(p) > 0 && p[0] == 0xff {
				e, err := ParseError(p)
				if err != nil {
					return s.Fail(err, dialog.Quote(p))
				}
				s.Received(e.String())
				return s.Failf(dialog.ErrRefused, e.String(), "server refused the connection")
			}
			h, err := ParseHandshake(p)
			if err != nil {
				return s.Fail(err, dialog.Quote(p))
			}
			s.Received(fmt.Sprintf("handshake v%d %s caps 0x%08x", h.ProtocolVersion, h.ServerVersion, h.Capabilities))
			s.SetGreeting(wire.Printable([]byte(h.ServerVersion)))
			s.SetCaps(clientCapabilities(h), h.Capabilities&ClientSSL != 0)
			return nil
		},
		Upgrade: func(s dialog.Client) error {
			// What greet learned is in the pre-TLS capabilities (the client
			// session has no per-protocol state).
			before := s.CapabilitiesBefore()
			server := uint32(clientCapNumber(before, "CAPABILITIES"))
			var charset byte = 45 // utf8mb4_general_ci
			if cs := clientCapNumber(before, "CHARSET"); cs > 0 && cs < 45 {
				charset = 33 // utf8_general_ci, for servers without utf8mb4
			}
			caps := (ClientLongPassword|ClientLongFlag|ClientTransactions|
				ClientMultiResults|ClientPluginAuth)&server |
				ClientSSL | ClientProtocol41 | ClientSecureConnection
			// The server answers nothing: the generic check right after this
			// call catches a server that talks (response injection), as far
			// as its bytes have arrived; later ones reach the TLS handshake
			// and fail it.
			return s.SendRaw(SSLRequest(caps, charset), fmt.Sprintf("SSLRequest caps 0x%08x", caps))
		},
	}
}
