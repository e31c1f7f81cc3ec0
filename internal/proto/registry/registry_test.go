package registry

import (
	"context"
	"errors"
	"io"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// Register keeps a description whole and its names unique: a second
// registration of a name or a twin, and a description without a
// lower-case name, a port or both halves, panic, and a refused one leaves
// nothing behind.
func TestRegisterValidates(t *testing.T) {
	names := []string{"registry-test", "registry-tests", "registry-other"}
	defer func() {
		for _, n := range names {
			delete(byName, n)
			delete(taken, n)
		}
	}()
	c, s := &dialog.ClientHalf{}, &dialog.ServerHalf{}
	Register(&Protocol{Name: "registry-test", Port: 1, Client: c, Server: s,
		Implicit: &Twin{Name: "registry-tests", Port: 2}})
	if p := Lookup("registry-test"); p == nil || p.Implicit.Port != 2 {
		t.Fatal("a registered protocol is not found")
	}
	if Lookup("registry-tests") != nil || Lookup("registry-test-other") != nil {
		t.Fatal("a twin or an unregistered name is found")
	}
	if got := Names(); !slices.Contains(got, "registry-test") || slices.Contains(got, "registry-tests") {
		t.Errorf("Names() = %q: want the protocol and not its twin", got)
	}
	for _, tc := range []struct {
		p    *Protocol
		want string
	}{
		{&Protocol{Name: "registry-test", Port: 1, Client: c, Server: s}, "twice"},
		{&Protocol{Name: "registry-other", Port: 1, Client: c, Server: s, Implicit: &Twin{Name: "registry-tests", Port: 2}}, "twice"},
		{&Protocol{Name: "registry-other", Port: 1, Client: c, Server: s, Implicit: &Twin{Name: "registry-other", Port: 2}}, "twice"},
		{&Protocol{Port: 1, Client: c, Server: s}, "lower-case"},
		{&Protocol{Name: "Registry-Other", Port: 1, Client: c, Server: s}, "lower-case"},
		{&Protocol{Name: "registry-other", Client: c, Server: s}, "port"},
		{&Protocol{Name: "registry-other", Port: 1, Client: c, Server: s, Implicit: &Twin{Name: "registry-others"}}, "port"},
		{&Protocol{Name: "registry-other", Port: 1, Server: s}, "half"},
		{&Protocol{Name: "registry-other", Port: 1, Client: c}, "half"},
	} {
		func() {
			defer func() {
				msg, _ := recover().(string)
				if !strings.Contains(msg, tc.want) {
					t.Errorf("Register(%q): panic %q, want one saying %q", tc.p.Name, msg, tc.want)
				}
			}()
			Register(tc.p)
		}()
	}
	if Lookup("registry-other") != nil || taken["registry-others"] {
		t.Error("a refused protocol was half registered")
	}
}

func TestJudges(t *testing.T) {
	first := FirstReply(Prefix("200"), Prefix("211"))
	for _, tc := range []struct {
		line    string
		replies int
		want    int
	}{
		{"200 NOOP ok", 0, Ours},
		{"211-Features:", 0, Pipelined},
		{"500 what", 0, Undecided},
		{"200 NOOP ok", 1, Undecided}, // only the first reply tells
	} {
		if got := first(tc.line, tc.replies, false); got != tc.want {
			t.Errorf("FirstReply(%q, %d) = %d, want %d", tc.line, tc.replies, got, tc.want)
		}
	}
	if got := FirstReply(Prefix("250-"), nil)("250 ok", 0, false); got != Undecided {
		t.Errorf("FirstReply with no pipelined matcher: %d", got)
	}
	marked := Marked(Prefix("yy "), Prefix("zz "))
	for line, want := range map[string]int{"yy OK": Ours, "zz OK": Pipelined, "* 3 EXISTS": Ignore} {
		if got := marked(line, 0, false); got != want {
			t.Errorf("Marked(%q) = %d, want %d", line, got, want)
		}
	}
	if !PrefixFold("OK")(`ok "done"`) || PrefixFold("OK")(`NO "x"`) {
		t.Error("PrefixFold")
	}
	if !Contains("tok")("PONG :tok") || Contains("tok")("PONG :other") {
		t.Error("Contains")
	}
}

// lines is a Session reading from a script and recording what is written.
type lines struct {
	in      []string
	written []string
	failAt  int // a write at this index fails (-1: never)
}

func (l *lines) ReadLine() (string, error) {
	if len(l.in) == 0 {
		return "", io.EOF
	}
	s := l.in[0]
	l.in = l.in[1:]
	return s, nil
}
func (l *lines) ReadN(int) (string, error) { return "", errors.New("no literal") }
func (l *lines) Write(ls ...string) error {
	if len(l.written) == l.failAt {
		return errors.New("broken pipe")
	}
	l.written = append(l.written, strings.Join(ls, "|"))
	return nil
}
func (l *lines) Secure() bool                  { return true }
func (l *lines) Implicit() bool                { return false }
func (l *lines) CheckUser(string, string) bool { return false }
func (l *lines) Hostname() string              { return "localhost" }

func TestDialogue(t *testing.T) {
	echo := func(line string) ([]string, bool) {
		switch line {
		case "":
			return nil, false // nothing written
		case "QUIT":
			return []string{"BYE"}, true
		}
		return []string{"> " + line}, false
	}
	s := &lines{in: []string{"a", "", "b", "QUIT", "after"}, failAt: -1}
	Dialogue(context.Background(), s, echo)
	if want := []string{"> a", "> b", "BYE"}; !reflect.DeepEqual(s.written, want) {
		t.Errorf("wrote %q, want %q", s.written, want)
	}
	// A failed write ends the dialogue; so does the end of input.
	s = &lines{in: []string{"a", "b", "c"}, failAt: 1}
	Dialogue(context.Background(), s, echo)
	if len(s.written) != 1 || len(s.in) != 1 {
		t.Errorf("after a failed write: wrote %q, left %q", s.written, s.in)
	}
	// A cancelled context reads nothing.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s = &lines{in: []string{"a"}, failAt: -1}
	Dialogue(ctx, s, echo)
	if len(s.written) != 0 {
		t.Errorf("cancelled: wrote %q", s.written)
	}
}

func TestPlainCredentials(t *testing.T) {
	if u, p, ok := PlainCredentials("AHVzZXIAc2VjcmV0"); !ok || u != "user" || p != "secret" {
		t.Errorf("got %q %q %v", u, p, ok)
	}
	for _, bad := range []string{"!!!", "dXNlcg=="} { // not base64; no NULs
		if _, _, ok := PlainCredentials(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}
