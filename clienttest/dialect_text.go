package clienttest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls"
)

// XMPP (RFC 6120 §5: <starttls/> in the stream features, <proceed/>),
// IRC (IRCv3 tls: STARTTLS → 670) and HTTP (RFC 2817: Upgrade: TLS/1.0 →
// 101).

// injectMarker is in the bytes injected for IRC and HTTP: their clients
// pipeline inside TLS, so only an echo of it proves they acted on them.
const injectMarker = "clienttest-injected"

func init() {
	register(starttls.XMPP, &dialect{
		pers: &personality{leaks: []string{"auth", "response", "iq", "message", "presence"}},
		open: func(offer bool) handler { return &xmppHandler{offer: offer} },
		refusals: map[string]string{
			"failure": "<starttls/> is advertised but answered with <failure/>",
		},
		stripSummary: "the stream features do not list <starttls/>, only SASL PLAIN",
	})
	register(starttls.IRC, &dialect{
		pers: &personality{leaks: []string{"PASS", "AUTHENTICATE", "PRIVMSG", "OPER"}},
		open: func(offer bool) handler { return &ircHandler{offer: offer} },
		refusals: map[string]string{
			"691": "tls is listed in CAP LS but STARTTLS is answered with 691 (STARTTLS failure)",
		},
		stripSummary: "CAP LS does not list tls and STARTTLS is an unknown command (421)",
		injectMarker: injectMarker,
	})
	register(starttls.HTTP, &dialect{
		pers: &personality{leak: func(text string) bool {
			return strings.Contains(text, "[authorization") || strings.Contains(text, "[body")
		}},
		open:         func(bool) handler { return &httpHandler{} },
		stripSummary: "the Upgrade: TLS/1.0 request is answered without 101, as by a server that ignores it",
		injectMarker: injectMarker,
	})
}

const (
	nsXMPPTLS  = "urn:ietf:params:xml:ns:xmpp-tls"
	nsXMPPSASL = "urn:ietf:params:xml:ns:xmpp-sasl"
)

// xmppHandler frames the XML stream into its header, its end and the
// top-level elements, by tag nesting: enough to name what the client sent.
type xmppHandler struct {
	offer, inTLS bool
	depth        int
}

var errTooLarge = errors.New("message too large")

// readTag skips character data and returns the next tag ("<...>", with
// '>' inside quoted attribute values kept); *budget bounds the bytes read.
func readTag(r *bufio.Reader, budget *int) (string, error) {
	var b strings.Builder
	var quote byte
	inTag := false
	for {
		if *budget--; *budget < 0 {
			return "", errTooLarge
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

func tagName(tag string) string {
	t := strings.TrimLeft(tag, "</")
	if i := strings.IndexAny(t, " \t\r\n/>"); i >= 0 {
		t = t[:i]
	}
	return t
}

func tagAttr(tag, name string) string {
	for _, q := range []string{"'", `"`} {
		if _, rest, ok := strings.Cut(tag, " "+name+"="+q); ok {
			v, _, _ := strings.Cut(rest, q)
			return v
		}
	}
	return ""
}

func (h *xmppHandler) frame(r *bufio.Reader) (msg, error) {
	budget := maxPacket
	var top, child string
	for {
		tag, err := readTag(r, &budget)
		if err != nil {
			return msg{}, err
		}
		name := tagName(tag)
		local := name[strings.IndexByte(name, ':')+1:]
		switch {
		case strings.HasPrefix(tag, "<?"), strings.HasPrefix(tag, "<!"):
		case strings.HasPrefix(tag, "</"):
			if h.depth == 0 {
				if local == "stream" {
					return msg{text: "/stream:stream"}, nil
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
				return msg{text: "stream:stream to=" + tagAttr(tag, "to"), name: tagAttr(tag, "to")}, nil
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

func (h *xmppHandler) describe(top, child string) msg {
	text := tagName(top)
	for _, a := range []string{"mechanism", "type"} {
		if v := tagAttr(top, a); v != "" {
			text += " " + a + "=" + v
		}
	}
	if child != "" {
		text += " <" + child + ">"
	}
	return msg{text: text, name: tagName(top)}
}

func (h *xmppHandler) header(m msg) string {
	from := m.name
	if from == "" {
		from = "localhost"
	}
	return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'" +
		" id='clienttest' from='" + xmlAttrEscape(from) + "' version='1.0'>"
}

func xmlAttrEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", "'", "&apos;", `"`, "&quot;").Replace(s)
}

const xmppMechanisms = "<mechanisms xmlns='" + nsXMPPSASL + "'><mechanism>PLAIN</mechanism></mechanisms>"

func (h *xmppHandler) greeting() []byte      { return nil }
func (h *xmppHandler) isUpgrade(m msg) bool  { return m.name == "starttls" }
func (h *xmppHandler) goAhead(msg) []byte    { return []byte("<proceed xmlns='" + nsXMPPTLS + "'/>") }
func (h *xmppHandler) tlsStarted(msg) []byte { h.inTLS, h.depth = true, 0; return nil }

// inject is the restarted stream the client awaits inside TLS.
func (h *xmppHandler) inject(msg) []byte {
	return []byte(h.header(msg{}) + "<stream:features>" + xmppMechanisms + "</stream:features>")
}

func (h *xmppHandler) refuse(string, msg) ([]byte, bool) {
	return []byte("<failure xmlns='" + nsXMPPTLS + "'/></stream:stream>"), true
}

func (h *xmppHandler) handle(m msg, inTLS bool) ([]byte, bool) {
	switch {
	case strings.HasPrefix(m.text, "stream:stream"):
		features := xmppMechanisms
		if h.offer && !inTLS {
			features = "<starttls xmlns='" + nsXMPPTLS + "'><required/></starttls>"
		}
		return []byte(h.header(m) + "<stream:features>" + features + "</stream:features>"), false
	case m.text == "/stream:stream":
		return []byte("</stream:stream>"), true
	case m.name == "auth" || m.name == "response":
		return []byte("<failure xmlns='" + nsXMPPSASL + "'><not-authorized/></failure>"), false
	}
	return nil, false
}

// readLine reads one line of at most 8 KiB (IRC with message tags; an
// HTTP header line), without its CRLF.
func readLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > 8<<10 {
		return "", errTooLarge
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}

// ircHandler keeps what registration needs: a welcome (001) once NICK and
// USER are in and capability negotiation is over.
type ircHandler struct {
	offer, inTLS, capNeg, welcomed bool
	nick, user                     string
}

func (h *ircHandler) frame(r *bufio.Reader) (msg, error) {
	for i := 0; i < 100; i++ {
		line, err := readLine(r)
		if err != nil {
			return msg{}, err
		}
		if strings.TrimSpace(line) != "" {
			return msg{text: line}, nil
		}
	}
	return msg{}, errTooLarge
}

func ircSplit(line string) (verb string, args []string) {
	if strings.HasPrefix(line, "@") || strings.HasPrefix(line, ":") {
		_, line, _ = strings.Cut(line, " ")
	}
	head, trailing, hasTrailing := strings.Cut(line, " :")
	f := strings.Fields(head)
	if len(f) == 0 {
		return "", nil
	}
	if hasTrailing {
		f = append(f, trailing)
	}
	return strings.ToUpper(f[0]), f[1:]
}

func (h *ircHandler) greeting() []byte { return nil }
func (h *ircHandler) isUpgrade(m msg) bool {
	v, _ := ircSplit(m.text)
	return v == "STARTTLS"
}
func (h *ircHandler) goAhead(msg) []byte {
	return []byte(":irc.test 670 * :STARTTLS successful, proceed with TLS handshake\r\n")
}

// inject asks for a PONG: a client that sends one with the marker read it.
func (h *ircHandler) inject(msg) []byte     { return []byte("PING :" + injectMarker + "\r\n") }
func (h *ircHandler) tlsStarted(msg) []byte { h.inTLS = true; return nil }

func (h *ircHandler) refuse(key string, _ msg) ([]byte, bool) {
	if key == "691" {
		return []byte(":irc.test 691 * :STARTTLS failure\r\n"), false
	}
	return []byte(":irc.test 421 * STARTTLS :Unknown command\r\n"), false
}

func (h *ircHandler) handle(m msg, inTLS bool) ([]byte, bool) {
	verb, args := ircSplit(m.text)
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	var out string
	switch verb {
	case "CAP":
		switch strings.ToUpper(arg(0)) {
		case "LS":
			h.capNeg = true
			caps := "multi-prefix sasl"
			if h.offer && !inTLS {
				caps += " tls"
			}
			out = ":irc.test CAP * LS :" + caps + "\r\n"
		case "REQ":
			h.capNeg = true
			out = ":irc.test CAP * ACK :" + arg(1) + "\r\n"
		case "LIST":
			out = ":irc.test CAP * LIST :\r\n"
		case "END":
			h.capNeg = false
		}
	case "PING":
		out = ":irc.test PONG irc.test :" + arg(0) + "\r\n"
	case "NICK":
		h.nick = arg(0)
	case "USER":
		h.user = arg(0)
	case "AUTHENTICATE":
		if strings.EqualFold(arg(0), "PLAIN") {
			out = "AUTHENTICATE +\r\n"
		} else {
			out = ":irc.test 904 * :SASL authentication failed\r\n"
		}
	case "QUIT":
		return []byte("ERROR :Closing link\r\n"), true
	}
	if h.nick != "" && h.user != "" && !h.capNeg && !h.welcomed {
		h.welcomed = true
		out += ":irc.test 001 " + h.nick + " :Welcome to clienttest\r\n:irc.test 376 " + h.nick + " :End of MOTD\r\n"
	}
	return []byte(out), false
}

// httpHandler frames requests: the head, then a body by Content-Length or
// chunks, all bounded.
type httpHandler struct{}

func (httpHandler) frame(r *bufio.Reader) (msg, error) {
	var reqLine string
	var upgrade, auth bool
	var length int
	var chunked bool
	for i := 0; ; i++ {
		if i == 100 {
			return msg{}, errTooLarge
		}
		line, err := readLine(r)
		if err != nil {
			return msg{}, err
		}
		if reqLine == "" {
			if line != "" { // a stray CRLF between requests is allowed
				reqLine = line
			}
			continue
		}
		if line == "" {
			break
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "upgrade":
			for _, t := range strings.Split(v, ",") {
				upgrade = upgrade || strings.EqualFold(strings.TrimSpace(t), "TLS/1.0")
			}
		case "authorization", "proxy-authorization":
			auth = true
		case "content-length":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 || n > maxPacket {
				return msg{}, fmt.Errorf("Content-Length %q", v)
			}
			length = n
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	if chunked {
		n, err := readChunks(r)
		if err != nil {
			return msg{}, err
		}
		length = n
	} else if _, err := io.CopyN(io.Discard, r, int64(length)); err != nil {
		return msg{}, err
	}
	f := strings.Fields(reqLine)
	text := strings.Join(f[:min(len(f), 2)], " ")
	if upgrade {
		text += " [upgrade TLS/1.0]"
	}
	if auth {
		text += " [authorization]"
	}
	if length > 0 {
		text += fmt.Sprintf(" [body %d bytes]", length)
	}
	return msg{text: text, name: f[0]}, nil
}

func readChunks(r *bufio.Reader) (int, error) {
	total := 0
	for i := 0; i < 1000; i++ {
		line, err := readLine(r)
		if err != nil {
			return total, err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 32)
		if err != nil || n < 0 || total+int(n) > maxPacket {
			return total, fmt.Errorf("chunk size %q", line)
		}
		if n == 0 {
			// Trailers, up to the blank line.
			for j := 0; j < 100; j++ {
				if l, err := readLine(r); err != nil || l == "" {
					return total, err
				}
			}
			return total, errTooLarge
		}
		total += int(n)
		if _, err := io.CopyN(io.Discard, r, n+2); err != nil {
			return total, err
		}
	}
	return total, errTooLarge
}

func (httpHandler) greeting() []byte     { return nil }
func (httpHandler) isUpgrade(m msg) bool { return strings.Contains(m.text, "[upgrade TLS/1.0]") }
func (httpHandler) goAhead(msg) []byte {
	return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n")
}

// inject is a redirect: a client that requests its target read it.
func (httpHandler) inject(msg) []byte {
	return []byte("HTTP/1.1 301 Moved Permanently\r\nLocation: /" + injectMarker + "\r\nContent-Length: 0\r\n\r\n")
}

// tlsStarted answers the upgrade request inside TLS (RFC 2817 §3.3).
func (h httpHandler) tlsStarted(upgrade msg) []byte {
	reply, _ := h.handle(upgrade, true)
	return reply
}

// refuse answers as a server that ignores Upgrade.
func (h httpHandler) refuse(_ string, m msg) ([]byte, bool) { return h.handle(m, false) }

func (httpHandler) handle(m msg, _ bool) ([]byte, bool) {
	switch {
	case strings.Contains(m.text, "[authorization]"):
		return []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"), false
	case m.name == "OPTIONS":
		return []byte("HTTP/1.1 200 OK\r\nAllow: OPTIONS, GET, POST\r\nContent-Length: 0\r\n\r\n"), false
	}
	return []byte("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"clienttest\"\r\nContent-Length: 0\r\n\r\n"), false
}
