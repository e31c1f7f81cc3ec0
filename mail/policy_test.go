package mail

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSTSRecord(t *testing.T) {
	for _, c := range []struct {
		in, id, err string
	}{
		{"v=STSv1; id=20160831085700Z;", "20160831085700Z", ""},
		{"v=STSv1;id=abc", "abc", ""},
		{"v=STSv1 ; id=abc ; ext_1=x.y", "abc", ""},
		{"v=STSv1; id=" + strings.Repeat("a", 32), strings.Repeat("a", 32), ""},
		{"v=STSv1; id=" + strings.Repeat("a", 33), "", "1 to 32"},
		{"v=STSv1; id=a-b", "", "1 to 32"},
		{"v=STSv1; id=", "", "1 to 32"},
		{"v=STSv1;", "", "no id"},
		{"v=STSv1; id=a; id=b", "", "twice"},
		{"v=STSv1; id=a; bad", "", "no '='"},
		{"v=STSv1; id=a; -x=1", "", "malformed"},
		{"v=STSv1; id=a; x=a;b", "", "no '='"},
		{"v=STSv2; id=a", "", "does not begin"},
		{"v=stsv1; id=a", "", "does not begin"},
		{"v=STSv1x; id=a", "", "does not begin"},
		{" v=STSv1; id=a", "", "does not begin"},
	} {
		r, err := ParseSTSRecord(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.in, err, c.err)
		case c.err == "" && r.ID != c.id:
			t.Errorf("%q: id %q, want %q", c.in, r.ID, c.id)
		}
	}
}

const goodPolicy = "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\nmx: backupmx.example.com\r\nmax_age: 604800\r\n"

func TestParsePolicy(t *testing.T) {
	p, err := ParsePolicy([]byte(goodPolicy))
	if err != nil {
		t.Fatal(err)
	}
	if p.Version != "STSv1" || p.Mode != ModeEnforce || p.MaxAge != 604800 ||
		!slices.Equal(p.MX, []string{"mail.example.com", "*.example.net", "backupmx.example.com"}) || len(p.Warnings) > 0 {
		t.Errorf("parsed %+v", p)
	}
	for _, c := range []struct {
		name, body, err string
		warn            bool
	}{
		{"LF endings, no final newline", "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 86400", "", false},
		{"none needs no mx", "version: STSv1\nmode: none\nmax_age: 0\n", "", false},
		{"unknown field ignored", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nfoo_bar: baz qux\n", "", false},
		{"duplicate mode: first wins", "version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 1\n", "", true},
		{"blank line", "version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 1\n", "", true},
		{"max age bound", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557600\n", "", false},
		{"max age too big", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "more than", false},
		{"max age 11 digits", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 00000000001\n", "1 to 10 digits", false},
		{"max age negative", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "not a number", false},
		{"no max age", "version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age", false},
		{"bad version", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "want STSv1", false},
		{"no version", "mode: enforce\nmx: a.example\nmax_age: 1\n", "no version", false},
		{"bad mode", "version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 1\n", "mode \"enforcing\"", false},
		{"mode case", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n", "", true},
		{"version case", "version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "", true},
		{"name case", "Version: STSv1\nMode: enforce\nMX: a.example\nmax_age: 1\n", "", true},
		{"no mx under enforce", "version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx", false},
		{"not a field", "version: STSv1\nmode enforce\nmx: a.example\nmax_age: 1\n", "not \"name: value\"", false},
		{"mx trailing dot", "version: STSv1\nmode: enforce\nmx: a.example.\nmax_age: 1\n", "trailing dot", false},
		{"mx U-label", "version: STSv1\nmode: enforce\nmx: mx.bücher.example\nmax_age: 1\n", "A-labels", false},
		{"mx double wildcard", "version: STSv1\nmode: enforce\nmx: *.*.example\nmax_age: 1\n", "has '*'", false},
		{"mx inner wildcard", "version: STSv1\nmode: enforce\nmx: mx.*.example\nmax_age: 1\n", "has '*'", false},
		{"mx hyphen", "version: STSv1\nmode: enforce\nmx: -mx.example\nmax_age: 1\n", "begins or ends", false},
		{"control character", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: a\x01b\n", "bad value", false},
		{"empty", "", "no version", false},
	} {
		p, err := ParsePolicy([]byte(c.body))
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		case c.err == "" && c.warn != (len(p.Warnings) > 0):
			t.Errorf("%s: warnings %v", c.name, p.Warnings)
		}
	}
	if p, _ := ParsePolicy([]byte("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n")); p.Mode != ModeEnforce {
		t.Errorf("mode Enforce: got %q, want it normalised", p.Mode)
	}
	p, _ = ParsePolicy([]byte("version: STSv1\nmode: testing\nmode: enforce\nmx: a.example\nmax_age: 1\n"))
	if p.Mode != ModeTesting {
		t.Errorf("duplicated mode: got %q, the first must win", p.Mode)
	}
	if _, err := ParsePolicy([]byte(strings.Repeat("x: y\n", MaxPolicySize/5+1))); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Errorf("oversized policy: %v", err)
	}
}

func TestMatchMX(t *testing.T) {
	for _, c := range []struct {
		pattern, host string
		want          bool
	}{
		{"mail.example.com", "mail.example.com", true},
		{"mail.example.com", "MAIL.Example.COM.", true},
		{"mail.example.com", "mail2.example.com", false},
		{"*.example.com", "mx1.example.com", true},
		{"*.example.com", "a.b.example.com", false}, // one label only (RFC 8461 §4.1)
		{"*.example.com", "example.com", false},
		{"*.example.com", ".example.com", false},
		{"*.example.com", "mx1.example.org", false},
		{"*.example.com", "mx1.notexample.com", false},
		{"", "mx1.example.com", false},
		{"mx1.example.com", "", false},
	} {
		if got := MatchMX(c.pattern, c.host); got != c.want {
			t.Errorf("MatchMX(%q, %q) = %v", c.pattern, c.host, got)
		}
	}
}

func TestParseTLSRPTRecord(t *testing.T) {
	for _, c := range []struct {
		in  string
		rua []string
		err string
	}{
		{"v=TLSRPTv1;rua=mailto:reports@example.com", []string{"mailto:reports@example.com"}, ""},
		{"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", []string{"https://reporting.example.com/v1/tlsrpt"}, ""},
		{"v=TLSRPTv1; rua=mailto:a@example.com, https://r.example/x;", []string{"mailto:a@example.com", "https://r.example/x"}, ""},
		{"v=TLSRPTv1; rua=mailto:a@example.com; ext=1", []string{"mailto:a@example.com"}, ""},
		{"v=TLSRPTv1", nil, "no rua"},
		{"v=TLSRPTv1; rua=ftp://x.example", nil, "only mailto"},
		{"v=TLSRPTv1; rua=mailto:nobody", nil, "not a mailto"},
		{"v=TLSRPTv1; rua=https:x", nil, "not an https"},
		{"v=TLSRPTv1; rua=mailto:a@b; rua=mailto:c@d", nil, "twice"},
		{"v=TLSRPTv1; rua=mailto:a @b", nil, "space"},
		{"v=TLSRPTv2; rua=mailto:a@b", nil, "does not begin"},
		{"rua=mailto:a@b; v=TLSRPTv1", nil, "does not begin"},
	} {
		r, err := ParseTLSRPTRecord(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("%q: %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%q: error %v, want %q", c.in, err, c.err)
		case c.err == "" && !slices.Equal(r.RUA, c.rua):
			t.Errorf("%q: rua %q, want %q", c.in, r.RUA, c.rua)
		}
	}
}

func TestNormalizeDomain(t *testing.T) {
	for in, want := range map[string]string{
		"Example.ORG.":   "example.org",
		"bücher.example": "xn--bcher-kva.example",
		" mail.test ":    "mail.test",
	} {
		got, err := NormalizeDomain(in)
		if err != nil || got != want {
			t.Errorf("NormalizeDomain(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", ".", "a..b", "exa mple.org"} {
		if got, err := NormalizeDomain(bad); err == nil {
			t.Errorf("NormalizeDomain(%q) = %q, want an error", bad, got)
		}
	}
}
