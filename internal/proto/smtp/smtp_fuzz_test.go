package smtp

import (
	"errors"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/wire"
)

// The fuzz target of the three-digit reply line shared by SMTP, FTP and
// NNTP: arbitrary input gives a result or an error, never a panic, and
// results keep their documented shape.

func FuzzParseCodeLine(f *testing.F) {
	for _, s := range []string{"220 ready", "211-Features:", "101", "382 go", "99 x", "2200", "abc", "", "600 x", "120-wait"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		code, more, text, err := ParseCodeLine(line, 100)
		if err != nil {
			if !errors.Is(err, wire.ErrProtocol) {
				t.Fatalf("error %v is not ErrProtocol", err)
			}
			return
		}
		if code < 100 || code > 599 || line[:3] != strings.TrimSpace(line[:3]) {
			t.Fatalf("code %d from %q", code, line)
		}
		if more != (len(line) > 3 && line[3] == '-') || (len(line) > 4 && text != line[4:]) {
			t.Fatalf("%q → more=%v text=%q", line, more, text)
		}
	})
}
