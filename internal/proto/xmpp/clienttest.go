package xmpp

import (
	"bufio"
	"encoding/base64"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// XMPP as clienttest's scenario server speaks it before TLS (RFC 6120 §5:
// <starttls/> in the stream features, <proceed/>).
var clientTest = &registry.ClientTest{
	Dialect: &registry.CTDialect{
		Open: func(offer bool) registry.CTHandler { return &ctHandler{offer: offer} },
		Refusals: map[string]string{
			"failure": "<starttls/> is advertised but answered with <failure/>",
		},
		StripSummary: "the stream features do not list <starttls/>, only SASL PLAIN",
	},
	Leaks: []string{"auth", "response", "iq", "message", "presence"},
	LoginRaw: []byte("<auth xmlns='" + NSSASL + "' mechanism='PLAIN'>" +
		base64.StdEncoding.EncodeToString([]byte("\x00user\x00secret")) + "</auth>"),
}

// ctHandler frames the XML stream into its header, its end and the
// top-level elements, by tag nesting: enough to name what the client
// sent. A message's Data is the element's name, or the stream header's
// to attribute.
type ctHandler struct {
	offer, inTLS bool
	depth        int
}

// ctReadTag skips character data and returns the next tag ("<...>", with
// '>' inside quoted attribute values kept); *budget bounds the bytes read.
func ctReadTag(r *bufio.Reader, budget *int) (string, error) {
	var b strings.Builder
	var quote byte
	inTag := false
	for {
		if *budget--; *budget < 0 {
			return "", registry.ErrCTTooLarge
		}
		c, err := r.ReadByte()
		if err != nil {
			return "", err
		}
		switch {
		case !inTag:
			if c == '<' {
				inTag = true
				b.WriteByte(c)
			}
		case quote != 0:
			b.WriteByte(c)
			if c == quote {
				quote = 0
			}
		default:
			b.WriteByte(c)
			switch c {
			case '"', '\'':
				quote = c
			case '>':
				return b.String(), nil
			}
		}
	}
}

func ctTagName(tag string) string {
	t := strings.TrimLeft(tag, "</")
	if i := strings.IndexAny(t, " \t\r\n/>"); i >= 0 {
		t = t[:i]
	}
	return t
}

func ctTagAttr(tag, name string) string {
	for _, q := range []string{"'", `"`} {
		if _, rest, ok := strings.Cut(tag, " "+name+"="+q); ok {
			v, _, _ := strings.Cut(rest, q)
			return v
		}
	}
	return ""
}

func (h *ctHandler) Frame(r *bufio.Reader) (registry.CTMsg, error) {
	budget := registry.CTMaxPacket
	var top, child string
	for {
		tag, err := ctReadTag(r, &budget)
		if err != nil {
			return registry.CTMsg{}, err
		}
		name := ctTagName(tag)
		local := name[strings.IndexByte(name, ':')+1:]
		switch {
		case strings.HasPrefix(tag, "<?"), strings.HasPrefix(tag, "<!"):
		case strings.HasPrefix(tag, "</"):
			if h.depth == 0 {
				if local == "stream" {
					return registry.CTMsg{Text: "/stream:stream"}, nil
				}
				continue
			}
			if h.depth--; h.depth == 0 {
				return h.describe(top, child), nil
			}
		default:
			self := strings.HasSuffix(tag, "/>")
			switch {
			case h.depth == 0 && local == "stream":
				to := ctTagAttr(tag, "to")
				return registry.CTMsg{Text: "stream:stream to=" + to, Data: to}, nil
			case h.depth == 0 && self:
				return h.describe(tag, ""), nil
			case h.depth == 0:
				top = tag
			case h.depth == 1 && child == "":
				child = name
			}
			if !self {
				h.depth++
			}
		}
	}
}

func (h *ctHandler) describe(top, child string) registry.CTMsg {
	text := ctTagName(top)
	for _, a := range []string{"mechanism", "type"} {
		if v := ctTagAttr(top, a); v != "" {
			text += " " + a + "=" + v
		}
	}
	if child != "" {
		text += " <" + child + ">"
	}
	return registry.CTMsg{Text: text, Data: ctTagName(top)}
}

func ctName(m registry.CTMsg) string { s, _ := m.Data.(string); return s }

func (h *ctHandler) header(m registry.CTMsg) string {
	from := ctName(m)
	if from == "" {
		from = "localhost"
	}
	return "<?xml version='1.0'?><stream:stream xmlns='" + NSClient + "' xmlns:stream='" + NSStreams + "'" +
		" id='clienttest' from='" + Escape(from) + "' version='1.0'>"
}

const ctMechanisms = "<mechanisms xmlns='" + NSSASL + "'><mechanism>PLAIN</mechanism></mechanisms>"

func (h *ctHandler) Greeting() []byte                 { return nil }
func (h *ctHandler) IsUpgrade(m registry.CTMsg) bool  { return ctName(m) == "starttls" }
func (h *ctHandler) GoAhead(registry.CTMsg) []byte    { return []byte(Proceed) }
func (h *ctHandler) TLSStarted(registry.CTMsg) []byte { h.inTLS, h.depth = true, 0; return nil }

// Inject is the restarted stream the client awaits inside TLS.
func (h *ctHandler) Inject(registry.CTMsg) []byte {
	return []byte(h.header(registry.CTMsg{}) + "<stream:features>" + ctMechanisms + "</stream:features>")
}

func (h *ctHandler) Refuse(string, registry.CTMsg) ([]byte, bool) {
	return []byte("<failure xmlns='" + NSTLS + "'/>" + Close), true
}

func (h *ctHandler) Handle(m registry.CTMsg, inTLS bool) ([]byte, bool) {
	switch {
	case strings.HasPrefix(m.Text, "stream:stream"):
		features := ctMechanisms
		if h.offer && !inTLS {
			features = "<starttls xmlns='" + NSTLS + "'><required/></starttls>"
		}
		return []byte(h.header(m) + "<stream:features>" + features + "</stream:features>"), false
	case m.Text == "/stream:stream":
		return []byte(Close), true
	case ctName(m) == "auth" || ctName(m) == "response":
		return []byte("<failure xmlns='" + NSSASL + "'><not-authorized/></failure>"), false
	}
	return nil, false
}
