package starttls

import (
	"errors"
	"strings"
	"testing"
)

// Fuzz targets for the line parsers of ManageSieve, IRC and HTTP:
// arbitrary input gives a result or an error, never a panic, and results
// keep their documented shape. The three-digit reply line of FTP and NNTP
// is fuzzed in internal/proto/smtp.

func FuzzSieveStrings(f *testing.F) {
	for _, s := range []string{`"SASL" "PLAIN LOGIN"`, `"STARTTLS"`, `"a\"b" x`, `"open`, `{5+}`, `OK "done"`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		out, err := sieveStrings(line)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		total := 0
		for _, s := range out {
			total += len(s)
		}
		if total > len(line) {
			t.Fatalf("%d bytes of strings from a %d-byte line", total, len(line))
		}
	})
}

func FuzzParseIRC(f *testing.F) {
	for _, s := range []string{":srv 670 * :go", "@a=b :n!u@h PRIVMSG #c :hi there", "PING :x", ":srv CAP * LS * :tls sasl", ":", "@", " ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := parseIRC(line)
		if err != nil {
			return
		}
		if m.Command == "" || strings.ContainsRune(m.Command, ' ') || len(m.Params) > 33 {
			t.Fatalf("%q → %+v", line, m)
		}
	})
}

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
		_, h, err := readHTTPHead(next)
		if err == nil && len(h) > maxHeaderLines {
			t.Fatalf("%d headers", len(h))
		}
		if i > maxHeaderLines+1 {
			t.Fatalf("read %d lines, limit %d", i, maxHeaderLines+1)
		}
		_ = headerHas(h, "Upgrade", "TLS")
	})
}
