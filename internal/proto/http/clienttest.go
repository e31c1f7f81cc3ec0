package http

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// HTTP as clienttest's scenario server speaks it before TLS (RFC 2817:
// Upgrade: TLS/1.0 → 101). A request leaks when it carries credentials
// or a body.
var clientTest = &registry.ClientTest{
	Dialect: &registry.CTDialect{
		Open:         func(bool) registry.CTHandler { return ctHandler{} },
		StripSummary: "the Upgrade: TLS/1.0 request is answered without 101, as by a server that ignores it",
		InjectMarker: registry.CTInjectMarker,
	},
	Leak: func(text string) bool {
		return strings.Contains(text, "[authorization") || strings.Contains(text, "[body")
	},
	LoginRaw: []byte("GET / HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic " +
		base64.StdEncoding.EncodeToString([]byte("user:secret")) + "\r\n\r\n"),
}

// ctHandler frames requests: the head, then a body by Content-Length or
// chunks, all bounded. A message's Data is its method.
type ctHandler struct{}

func (ctHandler) Frame(r *bufio.Reader) (registry.CTMsg, error) {
	var reqLine string
	var upgrade, auth bool
	var length int
	var chunked bool
	for i := 0; ; i++ {
		if i == 100 {
			return registry.CTMsg{}, registry.ErrCTTooLarge
		}
		line, err := registry.CTReadLine(r)
		if err != nil {
			return registry.CTMsg{}, err
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
			if err != nil || n < 0 || n > registry.CTMaxPacket {
				return registry.CTMsg{}, fmt.Errorf("Content-Length %q", v)
			}
			length = n
		case "transfer-encoding":
			chunked = strings.Contains(strings.ToLower(v), "chunked")
		}
	}
	if chunked {
		n, err := ctReadChunks(r)
		if err != nil {
			return registry.CTMsg{}, err
		}
		length = n
	} else if _, err := io.CopyN(io.Discard, r, int64(length)); err != nil {
		return registry.CTMsg{}, err
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
	return registry.CTMsg{Text: text, Data: f[0]}, nil
}

func ctReadChunks(r *bufio.Reader) (int, error) {
	total := 0
	for i := 0; i < 1000; i++ {
		line, err := registry.CTReadLine(r)
		if err != nil {
			return total, err
		}
		size, _, _ := strings.Cut(line, ";")
		n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 32)
		if err != nil || n < 0 || total+int(n) > registry.CTMaxPacket {
			return total, fmt.Errorf("chunk size %q", line)
		}
		if n == 0 {
			// Trailers, up to the blank line.
			for j := 0; j < 100; j++ {
				if l, err := registry.CTReadLine(r); err != nil || l == "" {
					return total, err
				}
			}
			return total, registry.ErrCTTooLarge
		}
		total += int(n)
		if _, err := io.CopyN(io.Discard, r, n+2); err != nil {
			return total, err
		}
	}
	return total, registry.ErrCTTooLarge
}

func (ctHandler) Greeting() []byte { return nil }
func (ctHandler) IsUpgrade(m registry.CTMsg) bool {
	return strings.Contains(m.Text, "[upgrade TLS/1.0]")
}
func (ctHandler) GoAhead(registry.CTMsg) []byte {
	return []byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n")
}

// Inject is a redirect: a client that requests its target read it.
func (ctHandler) Inject(registry.CTMsg) []byte {
	return []byte("HTTP/1.1 301 Moved Permanently\r\nLocation: /" + registry.CTInjectMarker + "\r\nContent-Length: 0\r\n\r\n")
}

// TLSStarted answers the upgrade request inside TLS (RFC 2817 §3.3).
func (h ctHandler) TLSStarted(upgrade registry.CTMsg) []byte {
	reply, _ := h.Handle(upgrade, true)
	return reply
}

// Refuse answers as a server that ignores Upgrade.
func (h ctHandler) Refuse(_ string, m registry.CTMsg) ([]byte, bool) { return h.Handle(m, false) }

func (ctHandler) Handle(m registry.CTMsg, _ bool) ([]byte, bool) {
	switch {
	case strings.Contains(m.Text, "[authorization]"):
		return []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nok\n"), false
	case m.Data == "OPTIONS":
		return []byte("HTTP/1.1 200 OK\r\nAllow: OPTIONS, GET, POST\r\nContent-Length: 0\r\n\r\n"), false
	}
	return []byte("HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"clienttest\"\r\nContent-Length: 0\r\n\r\n"), false
}
