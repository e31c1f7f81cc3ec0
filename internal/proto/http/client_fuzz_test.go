package http

import (
	"errors"
	"strings"
	"testing"
)

// The HTTP head reader: arbitrary input gives a result or an error,
// never a panic, and never reads past its bound.

func FuzzReadHTTPHead(f *testing.F) {
	f.Add("HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0\r\nConnection: Upgrade\r\n\r\n")
	f.Add("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n")
	f.Add("GET / HTTP/1.1\r\nbad header\r\n\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		lines := strings.Split(in, "\n")
		i := 0
		next := func() (string, error) {
			if i >= len(lines) {
				return "", errors.New("eof")
			}
			i++
			return strings.TrimSuffix(lines[i-1], "\r"), nil
		}
		_, h, err := clientReadHead(next)
		if err == nil && len(h) > clientMaxHeaderLines {
			t.Fatalf("%d headers", len(h))
		}
		if i > clientMaxHeaderLines+1 {
			t.Fatalf("read %d lines, limit %d", i, clientMaxHeaderLines+1)
		}
		_ = clientHeaderHas(h, "Upgrade", "TLS")
	})
}
