package smtp

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/relayq"
	"github.com/starttls-go/starttls/internal/relayq/relayqtest"
)

func TestProxyDown(t *testing.T) {
	long := strings.Repeat("x", 200)
	for _, tc := range []struct{ name, in, want string }{
		{"middle", "250-h\r\n250-STARTTLS\r\n250 SIZE 1\r\n", "250-h\r\n250 SIZE 1\r\n"},
		{"last", "250-h\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "250-h\r\n250 PIPELINING\r\n"},
		{"only", "250-h\r\n250 starttls\r\n", "250 h\r\n"},
		{"lower and args", "250-h\r\n250-StartTLS x\r\n250 AUTH PLAIN\r\n", "250-h\r\n250 AUTH PLAIN\r\n"},
		{"first line kept", "250-STARTTLS.example\r\n250 X\r\n", "250-STARTTLS.example\r\n250 X\r\n"},
		{"not 250", "220-STARTTLS\r\n220 x\r\n", "220-STARTTLS\r\n220 x\r\n"},
		{"single line", "250 STARTTLS\r\n", "250 STARTTLS\r\n"},
		{"bare LF", "250-h\n250-STARTTLS\n250 X\n", "250-h\r\n250 X\r\n"},
		{"long line passes", "250 " + long + "\r\n250-h\r\n250 STARTTLS\r\n", "250 " + long + "\r\n250 h\r\n"},
		{"garbage passes", "hello\r\n\x00\x01\r\n", "hello\r\n\x00\x01\r\n"},
		{"cut reply flushed", "250-h\r\n250-X\r\n", "250-h\r\n250-X\r\n"},
		{"pipelined", "250-h\r\n250 STARTTLS\r\n250 ok\r\n354 go\r\n", "250 h\r\n250 ok\r\n354 go\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := relayqtest.Down(proxyDown, tc.in, nil); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

// The filters never panic, and what they emit never advertises the upgrade
// in an SMTP EHLO-style reply or an IMAP capability line.
func FuzzProxyDown(f *testing.F) {
	f.Add("250-h\r\n250-STARTTLS\r\n250 SIZE 1\r\n")
	f.Add("250-h\r\n250 STARTTLS\r\n250 x\r\n")
	f.Add("220 x\r\n250 x\n")
	f.Fuzz(func(t *testing.T, in string) {
		out := relayqtest.Down(proxyDown, in, nil)
		inReply := false
		for _, l := range strings.Split(out, "\n") {
			l = strings.TrimSuffix(l, "\r")
			// Only a reply line ("250-" or "250 ") advertises; "2500STARTTLS"
			// is a malformed line the filter passes as the backend sent it.
			if inReply && len(l) >= 4 && (l[:4] == "250 " || l[:4] == "250-") && relayq.IsKeyword([]byte(l[4:]), "STARTTLS") && strings.HasSuffix(out, "\n") {
				t.Fatalf("STARTTLS survived in %q -> %q", in, out)
			}
			inReply = len(l) >= 4 && l[:4] == "250-"
		}
	})
}

// proxyDataEnd is the line-by-line reference for proxyData: the length of the
// body up to and including its first line "." (CRLF or LF), or -1.
func proxyDataEnd(body string) int {
	for off := 0; off < len(body); {
		i := strings.IndexByte(body[off:], '\n')
		if i < 0 {
			return -1
		}
		if l := strings.TrimSuffix(body[off:off+i], "\r"); l == "." {
			return off + i + 1
		}
		off += i + 1
	}
	return -1
}

// proxyCheckData runs proxyData over body read in pieces of every size from 16
// (bufio's least) up, and compares it with the line-by-line reference:
// the same bytes pass, the rest stays for the command parser.
func proxyCheckData(t *testing.T, body string) {
	t.Helper()
	end := proxyDataEnd(body)
	for _, size := range []int{16, 17, 19, 64, 4096} {
		var out bytes.Buffer
		br := bufio.NewReaderSize(proxyHalf(strings.NewReader(body)), size)
		err := proxyData(&out, br)
		if end < 0 {
			if err == nil || out.String() != body {
				t.Fatalf("size %d: %q: no end line, got %q, %v", size, body, out.String(), err)
			}
			continue
		}
		rest, _ := io.ReadAll(br)
		if err != nil || out.String() != body[:end] || string(rest) != body[end:] {
			t.Fatalf("size %d: %q: passed %q, left %q, %v; want %q", size, body, out.String(), rest, err, body[:end])
		}
	}
}

// proxyHalf returns r read at most 7 bytes at a time, so that an end line
// arrives cut in two.
func proxyHalf(r io.Reader) io.Reader { return &proxySmallReader{r} }

type proxySmallReader struct{ r io.Reader }

func (s *proxySmallReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 7)]) }

func TestProxyData(t *testing.T) {
	long := strings.Repeat("QUJDRGVm", 40)
	for _, body := range []string{
		".\r\n",
		".\n",
		"a\r\n.\r\nQUIT\r\n",
		"a.b\r\n..\r\n.x\r\n. \r\n.\r\r\n\r\n.\r\nNOOP\r\n",
		"line. with. dots.\r\n.\r\n",
		long + "\r\n." + long + "\r\n.\r\n",
		"\n.\n",
		"no end\r\n..\r\n",
		"x\r\n.\r",
	} {
		proxyCheckData(t, body)
	}
}

func FuzzProxyData(f *testing.F) {
	f.Add("a\r\n.\r\nQUIT\r\n")
	f.Add("..\r\n.\r.\n\n.\n")
	f.Fuzz(func(t *testing.T, body string) { proxyCheckData(t, body) })
}

// proxyRunRef is the straightforward form of proxyRun (every line parsed):
// the fast one must agree with it on where the run ends and on the replies
// it counts, so that skipping lines that cannot be replies weakens nothing.
func proxyRunRef(buf []byte, q *relayq.Queue) int {
	n := 0
	for {
		i := bytes.IndexByte(buf[n:], '\n')
		if i < 0 {
			return n
		}
		line := buf[n : n+i+1]
		code, more, ok := proxyReplyCode(relayq.TrimEOL(line))
		if ok && code == 250 && more {
			return n
		}
		if ok && !more {
			q.Answered(code)
		}
		n += i + 1
	}
}

func proxyCheckRun(t *testing.T, in string) {
	t.Helper()
	fast, ref := relayq.NewQueue(nil, nil), relayq.NewQueue(nil, nil)
	for range 64 {
		fast.Push(relayq.KindSingle)
		ref.Push(relayq.KindSingle)
	}
	n, want := proxyRun([]byte(in), fast, true), proxyRunRef([]byte(in), ref)
	if n != want || fast.Last() != ref.Last() || fast.Pending() != ref.Pending() {
		t.Fatalf("%q: run %d, last %d, %d left; want %d, %d, %d", in, n, fast.Last(), fast.Pending(), want, ref.Last(), ref.Pending())
	}
	if m := proxyRun([]byte(in), relayq.NewQueue(nil, nil), false); m != want {
		t.Fatalf("%q: run %d without counting, want %d", in, m, want)
	}
}

func TestProxyRun(t *testing.T) {
	for _, in := range []string{
		"", "x", "\n", "250-", "250-x\r\n", "250 x\r\n250-y\r\n", "QUJD\r\n250 done\r\n354 go\r\n",
		"199 x\r\n200 y\r\n999\r\n1000 z\r\n25\r\n250\n", "2500-x\r\n250x\r\n", "abc\r\n250 ok\r\npartial 250",
		"220-a\r\n220 b\r\n250-c\r\n250 d\r\n", "550 no\n\n\r\n", "250 \r\n250-\r\n",
	} {
		proxyCheckRun(t, in)
	}
	proxyCheckRun(t, string(proxyTestChunk)+"250 blob done\r\n250-x\r\n")
}

func FuzzProxyRun(f *testing.F) {
	f.Add("QUJD\r\n250 done\r\n250-x\r\n")
	f.Add("220-a\r\n220 b\r\n354 go\n250")
	f.Fuzz(proxyCheckRun)
}

// proxyTestChunk is whole base64-like lines, about 64 KiB, none of which
// can start a reply (the proxy's benchmark payload).
var proxyTestChunk = bytes.Repeat([]byte(strings.Repeat("QUJDRGVm", 9)+"QUJD\r\n"), (64<<10)/78)

// Reply lines at every offset among long non-reply lines: the scan's
// 16-byte blocks end at every place relative to a line start.
func TestProxyRunLong(t *testing.T) {
	line := string(proxyTestChunk[:78])
	for k := range 40 {
		pad := strings.Repeat("Q", k)
		for _, reply := range []string{"250 ok\r\n", "354 go\n", "250-x\r\n", "550 no\r\n", "1234\r\n"} {
			proxyCheckRun(t, line+pad+"\r\n"+reply+line+"250 end\r\n")
			proxyCheckRun(t, pad+"\n"+strings.Repeat(reply, 3)+line[:k]+"\n"+reply)
		}
	}
}

// BenchmarkProxyRun is the reply filter's scan over 32 KiB of lines that
// cannot be replies (one backend read of the proxy benchmark's load).
func BenchmarkProxyRun(b *testing.B) {
	buf := proxyTestChunk[:32<<10]
	q := relayq.NewQueue(nil, nil)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if n := proxyRun(buf, q, true); n == 0 {
			b.Fatal("no run")
		}
	}
}
