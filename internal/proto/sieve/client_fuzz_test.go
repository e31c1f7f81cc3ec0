package sieve

import (
	"errors"
	"github.com/starttls-go/starttls/internal/proto/dialog"
	"testing"
)

// The ManageSieve string parser: arbitrary input gives a result or an
// error, never a panic, and results keep their documented shape.

func FuzzSieveStrings(f *testing.F) {
	for _, s := range []string{`"SASL" "PLAIN LOGIN"`, `"STARTTLS"`, `"a\"b" x`, `"open`, `{5+}`, `OK "done"`, ``} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		out, err := clientStrings(line)
		if err != nil {
			if !errors.Is(err, dialog.ErrProtocol) {
				t.Fatalf("error %v is not dialog.ErrProtocol", err)
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
