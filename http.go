package starttls

import (
	"fmt"
	"net/textproto"
	"strconv"
	"strings"
)

// HTTP Upgrade to TLS within HTTP/1.1 (RFC 2817): "OPTIONS *" with
// "Upgrade: TLS/1.0" and "Connection: Upgrade" → "101 Switching
// Protocols", then TLS and the real request inside it. https is its
// implicit form.

// maxHeaderLines bounds a request's or response's header block.
const maxHeaderLines = 100

// readHTTPHead reads a start line and header block up to the empty line.
func readHTTPHead(readLine func() (string, error)) (string, textproto.MIMEHeader, error) {
	start, err := readLine()
	if err != nil {
		return "", nil, err
	}
	h := textproto.MIMEHeader{}
	for i := 0; i < maxHeaderLines; i++ {
		line, err := readLine()
		if err != nil {
			return start, nil, err
		}
		if line == "" {
			return start, h, nil
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return start, nil, fmt.Errorf("%w: malformed header line %q", ErrProtocol, line)
		}
		h.Add(textproto.CanonicalMIMEHeaderKey(k), strings.TrimSpace(v))
	}
	return start, nil, fmt.Errorf("%w: more than %d header lines", ErrProtocol, maxHeaderLines)
}

// headerHas reports whether a comma-separated header lists token
// (case-insensitive, ignoring a "/version" suffix when want has none).
func headerHas(h textproto.MIMEHeader, key, want string) bool {
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

func httpClient() *clientHalf {
	return &clientHalf{
		// No greeting and no capability query: the upgrade request is the question.
		greet: func(s *clientSession) error {
			s.offered = true
			return nil
		},
		upgrade: func(s *clientSession) error {
			host := s.host
			if strings.Contains(host, ":") {
				host = "[" + host + "]"
			}
			req := "OPTIONS * HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n"
			if err := s.sendRaw([]byte(req), "OPTIONS * HTTP/1.1 (Upgrade: TLS/1.0)"); err != nil {
				return err
			}
			status, h, err := readHTTPHead(s.readLine)
			if err != nil {
				return s.ioErr(err)
			}
			proto, rest, _ := strings.Cut(status, " ")
			code, _, _ := strings.Cut(rest, " ")
			if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 {
				return s.failf(ErrProtocol, status, "malformed status line")
			}
			if code != "101" {
				return s.failf(ErrRefused, status, "server answered %s", code)
			}
			if !headerHas(h, "Upgrade", "TLS") {
				return s.failf(ErrProtocol, status, "101 without Upgrade: TLS (Upgrade: %q)", h.Get("Upgrade"))
			}
			return nil
		},
		// RFC 2817 §3.3: once TLS is up the server "MUST continue with the
		// response to the original request", the OPTIONS *. It is read here
		// so that the caller's first response is the one to its own request.
		requery: func(s *clientSession) error {
			for i := 0; i < 10; i++ {
				status, h, err := readHTTPHead(s.readLine)
				if err != nil {
					return s.ioErr(err)
				}
				proto, rest, _ := strings.Cut(status, " ")
				code, _, _ := strings.Cut(rest, " ")
				if !strings.HasPrefix(proto, "HTTP/1.") || len(code) != 3 || code[0] < '1' || code[0] > '5' {
					return s.failf(ErrProtocol, status, "malformed status line inside TLS")
				}
				if code[0] == '1' {
					continue // interim response
				}
				if h.Get("Transfer-Encoding") != "" {
					return s.failf(ErrProtocol, status, "OPTIONS response with Transfer-Encoding %q", h.Get("Transfer-Encoding"))
				}
				if cl := h.Get("Content-Length"); cl != "" {
					n, err := strconv.Atoi(cl)
					if err != nil || n < 0 || n > httpMaxOptionsBody {
						return s.failf(ErrProtocol, status, "OPTIONS response Content-Length %q", cl)
					}
					if err := s.readFull(make([]byte, n)); err != nil {
						return err
					}
				}
				var allow Capabilities
				for _, v := range h.Values("Allow") {
					for _, m := range strings.Split(v, ",") {
						if m = strings.TrimSpace(m); m != "" {
							allow = append(allow, m)
						}
					}
				}
				s.caps = allow
				return nil
			}
			return s.failf(ErrProtocol, "", "more than 10 interim responses inside TLS")
		},
	}
}

// httpMaxOptionsBody bounds the body of the OPTIONS response read inside TLS.
const httpMaxOptionsBody = 64 << 10

func httpServer() *serverHalf {
	return &serverHalf{
		goAhead: func(s *serverSession) error {
			return s.sendRaw([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"),
				"HTTP/1.1 101 Switching Protocols")
		},
		// RFC 2817 §3.3: the response to the upgrading request comes inside TLS.
		afterTLS: func(s *serverSession) error {
			return s.sendRaw([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "HTTP/1.1 200 OK (to the OPTIONS, inside TLS)")
		},
		serve: func(s *serverSession) (action, error) {
			for i := 0; i < s.cfg.MaxCommands; i++ {
				var raw strings.Builder
				readLine := func() (string, error) {
					l, err := s.readLine()
					raw.WriteString(l + "\r\n")
					return l, err
				}
				start, h, err := readHTTPHead(readLine)
				if err != nil {
					return 0, s.ioErr(err)
				}
				if headerHas(h, "Upgrade", "TLS") && headerHas(h, "Connection", "Upgrade") {
					if h.Get("Content-Length") != "" || h.Get("Transfer-Encoding") != "" {
						// A body would be plaintext read across the upgrade.
						if err := s.send("HTTP/1.1 400 Bad Request", "Content-Length: 0", "Connection: close", ""); err != nil {
							return 0, err
						}
						return 0, s.fail(fmt.Errorf("%w: upgrade request with a body", ErrProtocol), start)
					}
					return actStartTLS, nil
				}
				if s.cfg.Policy == Optional {
					s.c.pending = []byte(raw.String())
					return actHandoff, nil
				}
				// RFC 2817 §4.2: 426 tells the client to upgrade first.
				if err := s.send("HTTP/1.1 426 Upgrade Required", "Upgrade: TLS/1.0, HTTP/1.1", "Connection: Upgrade",
					"Content-Type: text/plain", "Content-Length: 22", "", "TLS upgrade required"); err != nil {
					return 0, err
				}
				if h.Get("Content-Length") != "" || h.Get("Transfer-Encoding") != "" {
					return 0, s.fail(fmt.Errorf("%w: refused request had a body", ErrProtocol), start)
				}
			}
			return 0, s.fail(fmt.Errorf("%w: more than %d requests before TLS", ErrProtocol, s.cfg.MaxCommands), "")
		},
	}
}
