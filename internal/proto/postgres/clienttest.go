package postgres

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// PostgreSQL as clienttest's scenario server speaks it before TLS:
// SSLRequest → 'S' (go ahead) or 'N'; the password is asked for in clear,
// so that a client that goes on in plaintext shows it.
func clientTest() *registry.ClientTest {
	body := binary.BigEndian.AppendUint32(nil, Protocol3)
	body = append(body, "user\x00user\x00database\x00db\x00\x00"...)
	return &registry.ClientTest{
		Dialect: &registry.CTDialect{
			Open: func(bool) registry.CTHandler { return &ctHandler{} },
			Refusals: map[string]string{
				"error": "SSLRequest is answered with an ErrorResponse, as servers before 7.0 did",
			},
			StripSummary: "SSLRequest is answered with 'N' (no TLS), as an attacker on the path can",
		},
		Leaks:    []string{"StartupMessage", "PasswordMessage", "Query"},
		LoginRaw: append(binary.BigEndian.AppendUint32(nil, uint32(len(body)+4)), body...),
	}
}

// ctHandler frames PostgreSQL messages: untyped startup packets until a
// StartupMessage, typed messages after it. A typed message's Data is its
// type byte.
type ctHandler struct{ typed bool }

func (h *ctHandler) Frame(r *bufio.Reader) (registry.CTMsg, error) {
	if !h.typed {
		pkt, err := ctReadLenPrefixed(r, 8, MaxStartupPacket)
		if err != nil {
			return registry.CTMsg{}, err
		}
		st, err := ParseStartup(pkt)
		if err != nil {
			return registry.CTMsg{Text: "malformed startup packet: " + err.Error()}, nil
		}
		switch st.Code {
		case CodeSSLRequest:
			return registry.CTMsg{Text: "SSLRequest"}, nil
		case CodeGSSENCRequest:
			return registry.CTMsg{Text: "GSSENCRequest"}, nil
		case CodeCancelRequest:
			return registry.CTMsg{Text: "CancelRequest"}, nil
		}
		h.typed = true
		return registry.CTMsg{Text: fmt.Sprintf("StartupMessage user=%s database=%s", st.Params["user"], st.Params["database"])}, nil
	}
	t, err := r.ReadByte()
	if err != nil {
		return registry.CTMsg{}, err
	}
	body, err := ctReadLenPrefixed(r, 4, registry.CTMaxPacket)
	if err != nil {
		return registry.CTMsg{}, err
	}
	names := map[byte]string{'p': "PasswordMessage", 'Q': "Query", 'X': "Terminate", 'P': "Parse"}
	name := names[t]
	if name == "" {
		name = fmt.Sprintf("Message(%q)", t)
	}
	return registry.CTMsg{Text: fmt.Sprintf("%s (%d bytes)", name, len(body)-4), Data: t}, nil
}

// ctReadLenPrefixed reads a packet whose first four bytes are its length
// (big-endian, counting themselves), within [least, most].
func ctReadLenPrefixed(r *bufio.Reader, least, most int) ([]byte, error) {
	hdr, err := r.Peek(4)
	if err != nil {
		return nil, err
	}
	n := int(binary.BigEndian.Uint32(hdr))
	if n < least || n > most {
		return nil, fmt.Errorf("packet length %d outside [%d, %d]", n, least, most)
	}
	pkt := make([]byte, n)
	_, err = io.ReadFull(r, pkt)
	return pkt, err
}

func (h *ctHandler) Greeting() []byte                 { return nil }
func (h *ctHandler) IsUpgrade(m registry.CTMsg) bool  { return m.Text == "SSLRequest" }
func (h *ctHandler) GoAhead(registry.CTMsg) []byte    { return []byte("S") }
func (h *ctHandler) Inject(registry.CTMsg) []byte     { return ctAuthCleartext() }
func (h *ctHandler) TLSStarted(registry.CTMsg) []byte { h.typed = false; return nil }

func (h *ctHandler) Refuse(key string, _ registry.CTMsg) ([]byte, bool) {
	if key == "error" {
		return ErrorResponse("FATAL", "08P01", "unsupported frontend protocol 1234.5679"), true
	}
	return []byte("N"), false
}

func (h *ctHandler) Handle(m registry.CTMsg, _ bool) ([]byte, bool) {
	switch {
	case m.Text == "GSSENCRequest":
		return []byte("N"), false
	case strings.HasPrefix(m.Text, "StartupMessage") && len(m.Text) > 14:
		// Ask for the password in clear: what a client then sends in
		// plaintext is the leak this server is here to see.
		return ctAuthCleartext(), false
	case m.Data == byte('X'):
		return nil, true
	case m.Data == byte('p'):
		return ErrorResponse("FATAL", "28P01", `password authentication failed for user "user"`), true
	}
	return ErrorResponse("FATAL", "08P01", "unexpected message"), true
}

// ctAuthCleartext is AuthenticationCleartextPassword.
func ctAuthCleartext() []byte { return []byte{'R', 0, 0, 0, 8, 0, 0, 0, 3} }
