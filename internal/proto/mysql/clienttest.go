package mysql

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// MySQL as clienttest's scenario server speaks it before TLS: the
// server's handshake lists CLIENT_SSL or not, the client answers with
// SSLRequest and starts TLS without waiting for anything.
func clientTest() *registry.ClientTest {
	p := binary.LittleEndian.AppendUint32(nil, ClientProtocol41|ClientSecureConnection|ClientSSL)
	p = binary.LittleEndian.AppendUint32(p, 1<<24)
	p = append(p, 45)
	p = append(p, make([]byte, 23)...)
	p = append(p, "user\x00\x00"...)
	return &registry.ClientTest{
		Dialect: &registry.CTDialect{
			Open:         func(offer bool) registry.CTHandler { return &ctHandler{offer: offer, first: true} },
			StripSummary: "the server's handshake does not list CLIENT_SSL (stripped by an attacker)",
			NoGoAhead:    true,
		},
		Leaks:    []string{"HandshakeResponse", "COM_QUERY"},
		LoginRaw: Packet(2, p),
	}
}

// ctHandler frames MySQL packets; a message's Data is its sequence id.
type ctHandler struct {
	offer bool
	first bool // the next packet is the client's first: SSLRequest or HandshakeResponse
}

func (h *ctHandler) Frame(r *bufio.Reader) (registry.CTMsg, error) {
	seq, p, err := ReadPacket(func(b []byte) error { _, err := io.ReadFull(r, b); return err }, registry.CTMaxPacket)
	if err != nil {
		return registry.CTMsg{}, err
	}
	m, n := registry.CTMsg{Data: seq}, len(p)
	if h.first {
		h.first = false
		resp, err := ParseResponse(p)
		switch {
		case err != nil:
			m.Text = fmt.Sprintf("malformed client response (%d bytes): %v", n, err)
		case resp.User == "" && resp.Capabilities&ClientSSL != 0:
			m.Text = fmt.Sprintf("SSLRequest caps 0x%08x", resp.Capabilities)
		default:
			m.Text = fmt.Sprintf("HandshakeResponse user=%s (%d bytes)", resp.User, n)
		}
		return m, nil
	}
	switch {
	case n > 0 && p[0] == 0x01:
		m.Text = "COM_QUIT"
	case n > 0 && p[0] == 0x03:
		m.Text = fmt.Sprintf("COM_QUERY (%d bytes)", n-1)
	default:
		m.Text = fmt.Sprintf("packet (%d bytes)", n)
	}
	return m, nil
}

// ctVersion is the server version of the handshake.
const ctVersion = "8.0.0-clienttest"

// Greeting is HandshakePacket's, with CLIENT_SSL cleared when the
// scenario strips it. The scramble is fixed: the server never checks an
// answer.
func (h *ctHandler) Greeting() []byte {
	pkt := HandshakePacket(ctVersion, 7, []byte("clienttest-scramble!"))
	if !h.offer {
		// header, protocol version, version string and NUL, connection
		// id, 8 bytes of scramble and a filler, then the low capability flags.
		low := 4 + 1 + len(ctVersion) + 1 + 4 + 8 + 1
		caps := binary.LittleEndian.Uint16(pkt[low:]) &^ uint16(ClientSSL)
		binary.LittleEndian.PutUint16(pkt[low:], caps)
	}
	return pkt
}

func (h *ctHandler) IsUpgrade(m registry.CTMsg) bool { return strings.HasPrefix(m.Text, "SSLRequest ") }
func (h *ctHandler) GoAhead(registry.CTMsg) []byte   { return nil }
func (h *ctHandler) Inject(registry.CTMsg) []byte    { return nil }
func (h *ctHandler) TLSStarted(registry.CTMsg) []byte {
	h.first = true
	return nil
}

func ctSeq(m registry.CTMsg) byte { s, _ := m.Data.(byte); return s }

func (h *ctHandler) Refuse(_ string, m registry.CTMsg) ([]byte, bool) {
	return ErrPacket(ctSeq(m)+1, 1043, "08S01", "Bad handshake", true), true
}

func (h *ctHandler) Handle(m registry.CTMsg, _ bool) ([]byte, bool) {
	if m.Text == "COM_QUIT" {
		return nil, true
	}
	return ErrPacket(ctSeq(m)+1, 1045, "28000", "Access denied for user 'user'@'localhost' (using password: YES)", true), true
}
