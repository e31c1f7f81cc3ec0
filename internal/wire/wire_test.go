package wire

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestReadLineEndings(t *testing.T) {
	r := NewReader(strings.NewReader("one\r\ntwo\nthree\r\r\n\r\n\nfour\rfive\n"), 100, -1)
	var seen []string
	r.OnLine = func(l string) { seen = append(seen, l) }
	want := []string{"one", "two", "three\r", "", "", "four\rfive"}
	for _, w := range want {
		got, err := r.ReadLine()
		if err != nil {
			t.Fatalf("ReadLine: %v (want %q)", err, w)
		}
		if got != w {
			t.Fatalf("ReadLine = %q, want %q", got, w)
		}
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Fatalf("at the end: err = %v, want io.EOF", err)
	}
	if strings.Join(seen, "|") != strings.Join(want, "|") {
		t.Fatalf("OnLine saw %q, want %q", seen, want)
	}
}

func TestReadLineUnterminated(t *testing.T) {
	r := NewReader(strings.NewReader("ok\r\npartial"), 100, -1)
	if l, err := r.ReadLine(); err != nil || l != "ok" {
		t.Fatalf("ReadLine = %q, %v", l, err)
	}
	_, err := r.ReadLine()
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("err = %v, want io.ErrUnexpectedEOF", err)
	}
	if !strings.Contains(err.Error(), "partial") {
		t.Errorf("error %q does not quote the partial line", err)
	}
}

func TestReadLineTooLong(t *testing.T) {
	const max = 32
	for _, tc := range []struct {
		name string
		in   string
		ok   bool
	}{
		{"exact with CRLF", strings.Repeat("a", max) + "\r\n", true},
		{"exact with LF", strings.Repeat("a", max) + "\n", true},
		{"one over with LF", strings.Repeat("a", max+1) + "\n", false},
		{"one over with CRLF", strings.Repeat("a", max+1) + "\r\n", false},
		{"far over", strings.Repeat("a", 10*max) + "\r\n", false},
		{"over without end", strings.Repeat("a", 10*max), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReader(strings.NewReader(tc.in), max, -1)
			l, err := r.ReadLine()
			if tc.ok {
				if err != nil || len(l) != max {
					t.Fatalf("ReadLine = %d bytes, %v; want %d bytes", len(l), err, max)
				}
				return
			}
			if !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("ReadLine = %q, %v; want ErrLineTooLong", l, err)
			}
			if l != "" {
				t.Fatalf("ReadLine returned %q with an error", l)
			}
		})
	}
}

// A limit below bufio's minimum buffer (16) must still be enforced.
func TestReadLineTinyLimit(t *testing.T) {
	r := NewReader(strings.NewReader("ab\r\nabcdef\r\n"), 3, -1)
	if l, err := r.ReadLine(); err != nil || l != "ab" {
		t.Fatalf("ReadLine = %q, %v", l, err)
	}
	if _, err := r.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
}

func TestReadLineDefaultLimit(t *testing.T) {
	in := strings.Repeat("x", 8192) + "\r\n" + strings.Repeat("y", 8193) + "\r\n"
	r := NewReader(strings.NewReader(in), 0, -1)
	if l, err := r.ReadLine(); err != nil || len(l) != 8192 {
		t.Fatalf("ReadLine = %d bytes, %v", len(l), err)
	}
	if _, err := r.ReadLine(); !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("err = %v, want ErrLineTooLong", err)
	}
}

func TestReadLineBudget(t *testing.T) {
	// "abc\r\n" is 5 bytes: a budget of 10 allows two lines, not a third.
	r := NewReader(strings.NewReader(strings.Repeat("abc\r\n", 5)), 100, 10)
	for i := 0; i < 2; i++ {
		if l, err := r.ReadLine(); err != nil || l != "abc" {
			t.Fatalf("line %d: %q, %v", i, l, err)
		}
	}
	if _, err := r.ReadLine(); !errors.Is(err, ErrTooMuchData) {
		t.Fatalf("third line: err = %v, want ErrTooMuchData", err)
	}

	// The budget counts line endings and ReadFull alike.
	r = NewReader(strings.NewReader("ab\nXYZW"), 100, 6)
	if l, err := r.ReadLine(); err != nil || l != "ab" {
		t.Fatalf("ReadLine = %q, %v", l, err)
	}
	p := make([]byte, 4)
	if err := r.ReadFull(p); !errors.Is(err, ErrTooMuchData) {
		t.Fatalf("ReadFull beyond budget: err = %v, want ErrTooMuchData", err)
	}

	// Unlimited budget.
	r = NewReader(strings.NewReader(strings.Repeat("abc\r\n", 1000)), 100, -1)
	for i := 0; i < 1000; i++ {
		if _, err := r.ReadLine(); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
}

func TestReadFull(t *testing.T) {
	r := NewReader(strings.NewReader("{4}\r\nabcd\r\nxy"), 100, -1)
	if l, _ := r.ReadLine(); l != "{4}" {
		t.Fatalf("ReadLine = %q", l)
	}
	p := make([]byte, 4)
	if err := r.ReadFull(p); err != nil || string(p) != "abcd" {
		t.Fatalf("ReadFull = %q, %v", p, err)
	}
	if l, _ := r.ReadLine(); l != "" {
		t.Fatalf("ReadLine after literal = %q", l)
	}
	if err := r.ReadFull(make([]byte, 3)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short ReadFull: err = %v, want io.ErrUnexpectedEOF", err)
	}
	r = NewReader(strings.NewReader(""), 100, -1)
	if err := r.ReadFull(make([]byte, 1)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadFull at EOF: err = %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestPendingAndBuffered(t *testing.T) {
	r := NewReader(strings.NewReader("220 go ahead\r\nINJECTED\r\n"), 100, -1)
	if r.Buffered() != 0 || len(r.Pending()) != 0 {
		t.Fatalf("fresh reader: Buffered %d, Pending %q", r.Buffered(), r.Pending())
	}
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	if n := r.Buffered(); n != len("INJECTED\r\n") {
		t.Fatalf("Buffered = %d", n)
	}
	p := r.Pending()
	if string(p) != "INJECTED\r\n" {
		t.Fatalf("Pending = %q", p)
	}
	p[0] = 'X' // a copy: the reader must not see it
	if l, _ := r.ReadLine(); l != "INJECTED" {
		t.Fatalf("ReadLine after modifying Pending's result = %q", l)
	}
	if r.Buffered() != 0 || len(r.Pending()) != 0 {
		t.Fatalf("drained reader: Buffered %d, Pending %q", r.Buffered(), r.Pending())
	}
}

func TestReadAfterDialogue(t *testing.T) {
	r := NewReader(strings.NewReader("line\r\nrest of the stream"), 100, 7)
	if _, err := r.ReadLine(); err != nil {
		t.Fatal(err)
	}
	// Read is not limited by the budget and loses nothing that was buffered.
	got, err := io.ReadAll(r)
	if err != nil || string(got) != "rest of the stream" {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
}

func TestDeadlineCancel(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())
	d := Bind(ctx, a, time.Minute)
	d.Phase()
	errc := make(chan error, 1)
	go func() {
		_, err := a.Read(make([]byte, 1))
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("read after cancel: %v, want a deadline error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancelling ctx did not interrupt the read")
	}
	d.Release()
}

func TestDeadlinePhase(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	d := Bind(context.Background(), a, 50*time.Millisecond)
	d.Phase()
	start := time.Now()
	_, err := a.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("phase deadline took %v", el)
	}

	// The context's deadline wins when it is earlier than the phase's.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	d2 := Bind(ctx, a, time.Hour)
	d2.Phase()
	start = time.Now()
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read: %v, want a deadline error", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("context deadline took %v", el)
	}
	d2.Release()

	// After Release, the connection outlives a cancelled context.
	ctx3, cancel3 := context.WithCancel(context.Background())
	d3 := Bind(ctx3, a, 10*time.Millisecond)
	d3.Phase()
	d3.Release()
	cancel3()
	go func() { _, _ = b.Write([]byte("x")) }()
	if _, err := a.Read(make([]byte, 1)); err != nil {
		t.Fatalf("read after Release: %v", err)
	}
	d.Release()
}

// FuzzReadLine reads lines until an error and checks: no line exceeds the
// limit, each line is the next piece of the input with a LF or CRLF ending
// removed, the bytes consumed never exceed the budget, and errors are the
// typed ones.
func FuzzReadLine(f *testing.F) {
	f.Add([]byte("220 hi\r\n250-a\r\n250 b\r\n"), int16(16), int16(-1))
	f.Add([]byte("a\nb\r\nc"), int16(1), int16(100))
	f.Add([]byte("abc\r\nabc\r\nabc\r\n"), int16(10), int16(10))
	f.Add([]byte(strings.Repeat("x", 100)+"\r\n"), int16(20), int16(-5))
	f.Add([]byte("\r\r\n\n\r"), int16(0), int16(3))
	f.Add([]byte(strings.Repeat("y", 17)+"\n"), int16(15), int16(1000))
	f.Add([]byte(""), int16(5), int16(0))
	f.Fuzz(func(t *testing.T, data []byte, maxLine, budget int16) {
		ml := int(maxLine) % 300
		bg := int(budget)
		r := NewReader(bytes.NewReader(data), ml, bg)
		limit := ml
		if limit <= 0 {
			limit = 8192
		}
		var seen []string
		r.OnLine = func(l string) { seen = append(seen, l) }
		rest := data
		consumed := 0
		var lines []string
		for i := 0; ; i++ {
			if i > len(data)+1 {
				t.Fatalf("ReadLine keeps succeeding past the input")
			}
			line, err := r.ReadLine()
			if err != nil {
				if line != "" {
					t.Fatalf("ReadLine returned %q with error %v", line, err)
				}
				switch {
				case err == io.EOF:
					if len(rest) != 0 {
						t.Fatalf("io.EOF with %d bytes unread", len(rest))
					}
				case errors.Is(err, io.ErrUnexpectedEOF):
					if len(rest) == 0 || bytes.IndexByte(rest, '\n') >= 0 {
						t.Fatalf("unexpected EOF with rest %q", rest)
					}
				case errors.Is(err, ErrLineTooLong):
					n := bytes.IndexByte(rest, '\n')
					if n < 0 {
						n = len(rest)
					} else if n > 0 && rest[n-1] == '\r' {
						n--
					}
					if n <= limit {
						t.Fatalf("ErrLineTooLong for a %d-byte line (limit %d): %q", n, limit, rest)
					}
				case errors.Is(err, ErrTooMuchData):
					if bg < 0 {
						t.Fatalf("ErrTooMuchData with unlimited budget")
					}
					// The next chunk (up to the LF, or a full buffer) is over budget.
					chunk := len(rest)
					if n := bytes.IndexByte(rest, '\n'); n >= 0 {
						chunk = n + 1
					}
					chunk = min(chunk, max(16, limit+2))
					if consumed+chunk <= bg {
						t.Fatalf("ErrTooMuchData: consumed %d + next %d <= budget %d", consumed, chunk, bg)
					}
				default:
					t.Fatalf("untyped error %v", err)
				}
				break
			}
			lines = append(lines, line)
			if len(line) > limit {
				t.Fatalf("line of %d bytes, limit %d", len(line), limit)
			}
			var n int
			switch {
			case bytes.HasPrefix(rest, []byte(line+"\r\n")):
				n = len(line) + 2
			case bytes.HasPrefix(rest, []byte(line+"\n")):
				n = len(line) + 1
			default:
				t.Fatalf("line %q is not the next line of %q", line, rest)
			}
			rest = rest[n:]
			consumed += n
			if bg >= 0 && consumed > bg {
				t.Fatalf("consumed %d bytes, budget %d", consumed, bg)
			}
		}
		if strings.Join(seen, "\x00") != strings.Join(lines, "\x00") || len(seen) != len(lines) {
			t.Fatalf("OnLine saw %q, ReadLine returned %q", seen, lines)
		}
	})
}
