package imap

import (
	"strings"
	"testing"

	"github.com/starttls-go/starttls/internal/relayq/relayqtest"
)

func TestProxyDown(t *testing.T) {
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
			if got := relayqtest.Down(proxyDown, tc.in, nil); got != tc.want {
				t.Errorf("got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func FuzzProxyDown(f *testing.F) {
	f.Add("* CAPABILITY IMAP4rev1 STARTTLS\r\n")
	f.Add("* OK [CAPABILITY STARTTLS] x\r\n* 1 FETCH {3}\r\nabc)\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		out := relayqtest.Down(proxyDown, in, nil)
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
