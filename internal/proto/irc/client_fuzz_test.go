package irc

import (
	"strings"
	"testing"
)

// The IRC line parser: arbitrary input gives a result or an error,
// never a panic, and results keep their documented shape.

func FuzzParseIRC(f *testing.F) {
	for _, s := range []string{":srv 670 * :go", "@a=b :n!u@h PRIVMSG #c :hi there", "PING :x", ":srv CAP * LS * :tls sasl", ":", "@", " ", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		m, err := clientParse(line)
		if err != nil {
			return
		}
		if m.Command == "" || strings.ContainsRune(m.Command, ' ') || len(m.Params) > 33 {
			t.Fatalf("%q → %+v", line, m)
		}
	})
}
