package http

import (
	"fmt"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// HTTP Upgrade to TLS within HTTP/1.1 (RFC 2817): "OPTIONS *" with
// "Upgrade: TLS/1.0" and "Connection: Upgrade" → "101 Switching
// Protocols", then TLS and the real request inside it. https is its
// implicit form.

// clientMaxHeaderLines bounds a request's or response's header block.
const clientMaxHeaderLines = 100

// clientReadHead reads a start line and header block up to the empty line.
func clientReadHead(readLine func() (string, error)) (string, textproto.MIMEHeader, error) {
	start, err := readLine()
	if err != nil {
		return "", nil, err
	}
	h := textproto.MIMEHeader{}
	for i := 0; i < clientMaxHeaderLines; i++ {
		line, err := readLine()
		if err != nil {
			return start, nil, err
		}
		if line == "" {
			return start, h, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return start, nil, fmt.Errorf("%w: malformed header line %q", dialog.ErrProtocol, line)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(v))
	}
	return start, nil, fmt.Errorf("%w: more than %d header lines", dialog.ErrProtocol, clientMaxHeaderLines)
}

// clientHeaderHas reports whether a comma-separated header lists token
// (case-insensitive, ignoring a "/version" suffix when want has none).
func clientHeaderHas(h textproto.MIMEHeader, key, want string) bool {
	for _, v := range h.Values(key) {
		for _, t := range strings.Split(v, ",") {
			t = strings.TrimSpace(t)
			if strings.EqualFold(t, want) || (!strings.Contains(want, "/") && strings.HasPrefix(strings.ToUpper(t), strings.ToUpper(want)+"/")) {
				return true
			}
		}
	}
	return false
}

// clientHalf is HTTP's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		// No greeting and no capability query: the upgrade request is the question.
		Greet: dialog.SpeakFirst,
		Upgrade: func(s dialog.Client) error {
			host := s.Config().Host
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			req := "OPTIONS * HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n"
			if err := s.SendRaw([]byte(req), "OPTIONS * HTTP/1.1 (Upgrade: TLS/1.0)"); err != nil {
				return err
			}
			status, h, err := clientReadHead(s.ReadLine)
			if err != nil {
				return s.IOErr(err)
			}
			proto, rest, _ := strings.Cut(status, " ")
			code, _, _ := strings.Cut(rest, " ")
			if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 {
				return s.Failf(dialog.ErrProtocol, status, "malformed status line")
			}
			if code != "101" {
				return s.Failf(dialog.ErrRefused, status, "server answered %s", code)
			}
			if !clientHeaderHas(h, "Upgrade", "TLS") {
				return s.Failf(dialog.ErrProtocol, status, "101 without Upgrade: TLS (Upgrade: %q)", h.Get("Upgrade"))
			}
			return nil
		},
		// RFC 2817 §3.3: once TLS is up the server "MUST continue with the
		// response to the original request", the OPTIONS *. It is read here
		// so that the caller's first response is the one to its own request.
		Requery: func(s dialog.Client) error {
			for i := 0; i < 10; i++ {
				status, h, err := clientReadHead(s.ReadLine)
				if err != nil {
					return s.IOErr(err)
				}
				proto, rest, _ := strings.Cut(status, " ")
				code, _, _ := strings.Cut(rest, " ")
				if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || code[0] < '1' || code[0] > '5' {
					return s.Failf(dialog.ErrProtocol, status, "malformed status line inside TLS")
				}
				if code[0] == '1' {
					continue // interim response
				}
				if h.Get("Transfer-Encoding") != "" {
					return s.Failf(dialog.ErrProtocol, status, "OPTIONS response with Transfer-Encoding %q", h.Get("Transfer-Encoding"))
				}
				if cl := h.Get("Content-Length"); cl != "" {
					n, err := strconv.Atoi(cl)
					if err != nil || n < 0 || n > clientMaxOptionsBody {
						return s.Failf(dialog.ErrProtocol, status, "OPTIONS response Content-Length %q", cl)
					}
					if err := s.ReadFull(make([]byte, n)); err != nil {
						return err
					}
				}
				var allow dialog.Capabilities
				for _, v := range h.Values("Allow") {
					for _, m := range strings.Split(v, ",") {
						if m = strings.TrimSpace(m); m != "" {
							allow = append(allow, m)
						}
					}
				}
				s.SetCaps(allow, false)
				return nil
			}
			return s.Failf(dialog.ErrProtocol, "", "more than 10 interim responses inside TLS")
		},
	}
}

// clientMaxOptionsBody bounds the body of the OPTIONS response read inside TLS.
const clientMaxOptionsBody = 64 << 10
