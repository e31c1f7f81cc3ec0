package smtp

import (
	"math/rand/v2"
	"testing"
)

// scalarReplyStart is the definition nextReplyStart implements, byte by byte.
func scalarReplyStart(s []byte) int {
	for i := 1; i < len(s); i++ {
		if s[i-1] == '\n' && s[i] >= '2' && s[i] <= '9' {
			return i
		}
	}
	return -1
}

func TestNextReplyStart(t *testing.T) {
	alphabet := []byte("\n\r0123456789:/ -Q\x00\xff\x0b\x08")
	rng := rand.New(rand.NewPCG(1, 2))
	for n := range 20000 {
		s := make([]byte, rng.IntN(80))
		for i := range s {
			if rng.IntN(4) == 0 {
				s[i] = alphabet[rng.IntN(len(alphabet))]
			} else {
				s[i] = 'A' + byte(rng.IntN(26))
			}
		}
		// Every offset, so blocks end at every place relative to a match.
		for off := 0; off <= len(s); off += 1 + n%3 {
			want := scalarReplyStart(s[off:])
			if got := nextReplyStart(s[off:]); got != want {
				t.Fatalf("nextReplyStart(%q) = %d, want %d", s[off:], got, want)
			}
			if got := nextReplyStartGeneric(s[off:]); got != want {
				t.Fatalf("nextReplyStartGeneric(%q) = %d, want %d", s[off:], got, want)
			}
		}
	}
}

func FuzzNextReplyStart(f *testing.F) {
	f.Add([]byte("abc\n250-x\r\n"))
	f.Add([]byte("0123456789abcdef\n1\n9"))
	f.Fuzz(func(t *testing.T, s []byte) {
		want := scalarReplyStart(s)
		if got := nextReplyStart(s); got != want {
			t.Fatalf("nextReplyStart(%q) = %d, want %d", s, got, want)
		}
		if got := nextReplyStartGeneric(s); got != want {
			t.Fatalf("nextReplyStartGeneric(%q) = %d, want %d", s, got, want)
		}
	})
}
