package scan

import (
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
)

func TestParseLine(t *testing.T) {
	cases := []struct {
		line  string
		proto starttls.Protocol
		want  string // key, "" when skipped
		err   bool
	}{
		{"smtp://mx.example.org:25", "", "smtp://mx.example.org:25", false},
		{"smtp://mx.example.org", "", "smtp://mx.example.org:25", false},
		{"  imap://127.0.0.1:1143  ", "", "imap://127.0.0.1:1143", false},
		{"mx.example.org", "smtp", "smtp://mx.example.org:25", false},
		{"mx.example.org:2525", "smtp", "smtp://mx.example.org:2525", false},
		{"[2001:db8::1]:25", "smtp", "smtp://[2001:db8::1]:25", false},
		{"pop3://pop.example.org # a comment", "", "pop3://pop.example.org:110", false},
		{"SMTP://MX.example.org:25", "", "smtp://MX.example.org:25", false},
		{"imap://x.example:143\r", "", "imap://x.example:143", false},
		{"", "", "", false},
		{"   ", "smtp", "", false},
		{"# only a comment", "", "", false},
		{"mx.example.org", "", "", true},           // no protocol
		{"gopher://x.example", "", "", true},       // unknown protocol
		{"smtp://x.example:0", "", "", true},       // bad port
		{"smtp://x.example:99999", "", "", true},   // bad port
		{"smtp://user@x.example:25", "", "", true}, // credentials are not a target
		{"smtp://x.example:25/path", "", "", true}, // nor paths
		{"a.example b.example", "smtp", "", true},  // two on a line
		{"smtp://:25", "", "", true},               // no host
		{"smtp://x.example:port", "", "", true},    // port not a number
		{"x.example:25:26", "smtp", "", true},      // two ports
		{"smtp://x\x00.example:25", "", "", true},  // NUL
		{"smtp+starttls://x.example", "", "smtp://x.example:25", false},
		{"2001:db8::1", "smtp", "smtp://[2001:db8::1]:25", false},
		{"smtp://x..example", "", "", true},
		{"smtp://x%41.example", "", "", true},
	}
	for _, c := range cases {
		tg, ok, err := ParseLine(c.line, c.proto)
		if (err != nil) != c.err {
			t.Errorf("ParseLine(%q): err %v, want error %v", c.line, err, c.err)
			continue
		}
		got := ""
		if ok {
			got = Key(tg)
		}
		if got != c.want {
			t.Errorf("ParseLine(%q) = %q, want %q", c.line, got, c.want)
		}
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{"smtp://mx.example.org:25", "mx:25", "#", "[::1]:25", "imap://a:1 #c", "smtp://[::1", "\xff\xfe"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		tg, ok, err := ParseLine(line, starttls.SMTP)
		if err != nil && ok {
			t.Fatalf("ok with an error")
		}
		if !ok {
			return
		}
		if tg.Host == "" || tg.Port < 1 || tg.Port > 65535 {
			t.Fatalf("accepted %q as %+v", line, tg)
		}
		// The key is a canonical form: parsing it again gives itself.
		k := Key(tg)
		t2, ok2, err2 := ParseLine(k, "")
		if err2 != nil || !ok2 || Key(t2) != k {
			t.Fatalf("key %q of %q does not parse back: %v", k, line, err2)
		}
	})
}

func TestReader(t *testing.T) {
	in := "smtp://a.example\n\n# c\nbad line here\n" + strings.Repeat("x", MaxLine+10) + "\nb.example:2525\r\nc.example"
	r := NewReader(strings.NewReader(in), starttls.SMTP)
	var got []string
	for i := 0; i < 100; i++ {
		l, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if l.Err != nil {
			got = append(got, "err@"+itoa(l.N))
			continue
		}
		got = append(got, Key(l.Target)+"@"+itoa(l.N))
	}
	want := []string{"smtp://a.example:25@1", "err@4", "err@5", "smtp://b.example:2525@6", "smtp://c.example:25@7"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v\nwant %v", got, want)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestShard(t *testing.T) {
	for _, c := range []struct {
		s    string
		ok   bool
		want Shard
	}{{"0/1", true, Shard{0, 1}}, {"3/16", true, Shard{3, 16}}, {" 1 / 2 ", true, Shard{1, 2}},
		{"2/2", false, Shard{}}, {"-1/2", false, Shard{}}, {"1/0", false, Shard{}}, {"1", false, Shard{}}, {"a/b", false, Shard{}}} {
		got, err := ParseShard(c.s)
		if (err == nil) != c.ok || got != c.want {
			t.Errorf("ParseShard(%q) = %v, %v", c.s, got, err)
		}
	}
	// Stable across versions: these values are part of the contract
	// (shards of a scan split over machines and releases must agree).
	if got := ShardOf("smtp://mx.example.org:25", 16); got != ShardOf("smtp://mx.example.org:25", 16) {
		t.Fatal("not deterministic")
	}
	for k, want := range map[string]int{"smtp://mx.example.org:25": 6, "imap://127.0.0.1:143": 4, "smtp://127.0.0.2:2525": 5} {
		if got := ShardOf(k, 7); got != want {
			t.Errorf("ShardOf(%q, 7) = %d, want %d (FNV-1a 64 mod n)", k, got, want)
		}
	}
	// Every key falls in exactly one shard; the shards together cover all.
	n := 5
	counts := make([]int, n)
	for i := range 10000 {
		k := Key(starttls.Target{Protocol: starttls.SMTP, Host: "10.0." + itoa(i/256) + "." + itoa(i%256), Port: 25 + i})
		in := 0
		for s := range n {
			if (Shard{s, n}).Contains(k) {
				in++
				counts[s]++
			}
		}
		if in != 1 {
			t.Fatalf("%s in %d shards", k, in)
		}
	}
	for s, c := range counts {
		if c < 1500 || c > 2500 {
			t.Errorf("shard %d has %d of 10000 keys: the hash does not spread", s, c)
		}
	}
	if !(Shard{}).Contains("anything") {
		t.Error("the zero shard must hold everything")
	}
}
