package proxy

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"
)

func runDown(f func(*bufio.Writer, *bufio.Reader, *cmdQueue) error, in string, q *cmdQueue) string {
	var out bytes.Buffer
	bw := bufio.NewWriterSize(&out, 4096)
	br := bufio.NewReaderSize(strings.NewReader(in), 64) // small: long lines come in pieces
	if q == nil {
		q = &cmdQueue{}
	}
	_ = f(bw, br, q)
	bw.Flush()
	return out.String()
}

func TestSMTPDown(t *testing.T) {
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
			if got := runDown(smtpDown, tc.in, nil); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestIMAPDown(t *testing.T) {
	lit := "* CAPABILITY STARTTLS\r\n"
	for _, tc := range []struct{ name, in, want string }{
		{"untagged", "* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED AUTH=PLAIN\r\n", "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"},
		{"code", "* OK [CAPABILITY IMAP4rev1 STARTTLS ID] hi\r\n", "* OK [CAPABILITY IMAP4rev1 ID] hi\r\n"},
		{"tagged code", "a1 OK [CAPABILITY IMAP4rev1 LOGINDISABLED] done\r\n", "a1 OK [CAPABILITY IMAP4rev1] done\r\n"},
		{"literal untouched", "* 1 FETCH (BODY[] {23}\r\n" + lit + ")\r\n* CAPABILITY STARTTLS X\r\n",
			"* 1 FETCH (BODY[] {23}\r\n" + lit + ")\r\n* CAPABILITY X\r\n"},
		{"literal+ and two literals", "* X {3+}\r\nabc {5}\r\n* CAP)\r\n* CAPABILITY STARTTLS\r\n", "* X {3+}\r\nabc {5}\r\n* CAP)\r\n* CAPABILITY\r\n"},
		{"other lines", "* 3 EXISTS\r\na OK STARTTLS is fine in text\r\n", "* 3 EXISTS\r\na OK STARTTLS is fine in text\r\n"},
		// invalid UTF-8 before the code: a Unicode upper-case would shift the indices
		{"invalid utf-8", "a\xff\xfe OK [CAPABILITY STARTTLS X] \xff\r\n", "a\xff\xfe OK [CAPABILITY X] \xff\r\n"},
		{"invalid utf-8 untagged", "* capability \xffSTARTTLS starttls\r\n", "* capability \xffSTARTTLS\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := runDown(imapDown, tc.in, nil); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestPOP3UpDown(t *testing.T) {
	q := &cmdQueue{}
	up := "CAPA\r\nRETR 1\r\nLIST 1\r\nLIST\r\nAUTH PLAIN\r\ndGVzdA==\r\n"
	if err := pop3Up(io.Discard, bufio.NewReader(strings.NewReader(up)), q); err != io.EOF {
		t.Fatalf("up: %v", err)
	}
	down := "+OK\r\nSTLS\r\nUSER\r\n.\r\n" + // CAPA
		"+OK\r\nSTLS\r\n.\r\n" + // RETR: a body line, kept
		"+OK 1 100\r\n" + // LIST 1
		"+OK\r\n1 100\r\n.\r\n" + // LIST
		"+ \r\n" + // AUTH PLAIN
		"+OK logged in\r\n"
	want := "+OK\r\nUSER\r\n.\r\n+OK\r\nSTLS\r\n.\r\n+OK 1 100\r\n+OK\r\n1 100\r\n.\r\n+ \r\n+OK logged in\r\n"
	if got := runDown(pop3Down, down, q); got != want {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

// The filters never panic, and what they emit never advertises the upgrade
// in an SMTP EHLO-style reply or an IMAP capability line.
func FuzzSMTPDown(f *testing.F) {
	f.Add("250-h\r\n250-STARTTLS\r\n250 SIZE 1\r\n")
	f.Add("250-h\r\n250 STARTTLS\r\n250 x\r\n")
	f.Add("220 x\r\n250 x\n")
	f.Fuzz(func(t *testing.T, in string) {
		out := runDown(smtpDown, in, nil)
		inReply := false
		for _, l := range strings.Split(out, "\n") {
			l = strings.TrimSuffix(l, "\r")
			if inReply && len(l) >= 4 && l[:3] == "250" && isKeyword(l[4:], "STARTTLS") && strings.HasSuffix(out, "\n") {
				t.Fatalf("STARTTLS survived in %q -> %q", in, out)
			}
			inReply = len(l) >= 4 && l[:4] == "250-"
		}
	})
}

func FuzzIMAPDown(f *testing.F) {
	f.Add("* CAPABILITY IMAP4rev1 STARTTLS\r\n")
	f.Add("* OK [CAPABILITY STARTTLS] x\r\n* 1 FETCH {3}\r\nabc)\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		out := runDown(imapDown, in, nil)
		if !strings.Contains(strings.ToUpper(in), "{") {
			for _, l := range strings.Split(out, "\n") {
				u := strings.ToUpper(l)
				if strings.HasPrefix(u, "* CAPABILITY ") && strings.Contains(u+" ", " STARTTLS ") {
					t.Fatalf("STARTTLS survived in %q -> %q", in, out)
				}
			}
		}
	})
}

func TestProxyHeaderLocal(t *testing.T) {
	h := proxyHeader(nil, nil, nil)
	if !bytes.HasPrefix(h, proxySig) || h[12] != 0x20 || len(h) != 16 {
		t.Errorf("LOCAL header %x", h)
	}
}

// dataEnd is the line-by-line reference for smtpData: the length of the
// body up to and including its first line "." (CRLF or LF), or -1.
func dataEnd(body string) int {
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

// checkData runs smtpData over body read in pieces of every size from 16
// (bufio's least) up, and compares it with the line-by-line reference:
// the same bytes pass, the rest stays for the command parser.
func checkData(t *testing.T, body string) {
	t.Helper()
	end := dataEnd(body)
	for _, size := range []int{16, 17, 19, 64, 4096} {
		var out bytes.Buffer
		br := bufio.NewReaderSize(iotestHalf(strings.NewReader(body)), size)
		err := smtpData(&out, br)
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

// iotestHalf returns r read at most 7 bytes at a time, so that an end line
// arrives cut in two.
func iotestHalf(r io.Reader) io.Reader { return &smallReader{r} }

type smallReader struct{ r io.Reader }

func (s *smallReader) Read(p []byte) (int, error) { return s.r.Read(p[:min(len(p), 7)]) }

func TestSMTPData(t *testing.T) {
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
		checkData(t, body)
	}
}

func FuzzSMTPData(f *testing.F) {
	f.Add("a\r\n.\r\nQUIT\r\n")
	f.Add("..\r\n.\r.\n\n.\n")
	f.Fuzz(func(t *testing.T, body string) { checkData(t, body) })
}

// smtpRunRef is the straightforward form of smtpRun (every line parsed):
// the fast one must agree with it on where the run ends and on the replies
// it counts, so that skipping lines that cannot be replies weakens nothing.
func smtpRunRef(buf []byte, q *cmdQueue) int {
	n := 0
	for {
		i := bytes.IndexByte(buf[n:], '\n')
		if i < 0 {
			return n
		}
		line := buf[n : n+i+1]
		code, more, ok := replyCode(trimEOL(line))
		if ok && code == 250 && more {
			return n
		}
		if ok && !more {
			q.answered(code)
		}
		n += i + 1
	}
}

func checkSMTPRun(t *testing.T, in string) {
	t.Helper()
	fast, ref := newCmdQueue(nil), newCmdQueue(nil)
	for range 64 {
		fast.push(kindSingle)
		ref.push(kindSingle)
	}
	n, want := smtpRun([]byte(in), fast, true), smtpRunRef([]byte(in), ref)
	if n != want || fast.last != ref.last || len(fast.kinds) != len(ref.kinds) {
		t.Fatalf("%q: run %d, last %d, %d left; want %d, %d, %d", in, n, fast.last, len(fast.kinds), want, ref.last, len(ref.kinds))
	}
	if m := smtpRun([]byte(in), newCmdQueue(nil), false); m != want {
		t.Fatalf("%q: run %d without counting, want %d", in, m, want)
	}
}

func TestSMTPRun(t *testing.T) {
	for _, in := range []string{
		"", "x", "\n", "250-", "250-x\r\n", "250 x\r\n250-y\r\n", "QUJD\r\n250 done\r\n354 go\r\n",
		"199 x\r\n200 y\r\n999\r\n1000 z\r\n25\r\n250\n", "2500-x\r\n250x\r\n", "abc\r\n250 ok\r\npartial 250",
		"220-a\r\n220 b\r\n250-c\r\n250 d\r\n", "550 no\n\n\r\n", "250 \r\n250-\r\n",
	} {
		checkSMTPRun(t, in)
	}
	checkSMTPRun(t, string(benchChunk)+"250 blob done\r\n250-x\r\n")
}

func FuzzSMTPRun(f *testing.F) {
	f.Add("QUJD\r\n250 done\r\n250-x\r\n")
	f.Add("220-a\r\n220 b\r\n354 go\n250")
	f.Fuzz(checkSMTPRun)
}
