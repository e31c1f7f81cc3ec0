package check

import (
	"io"
	"testing"

	"github.com/starttls-go/starttls"
)

// What a server sends inside TLS after the pipelined probe and the
// sentinel, for safe and vulnerable servers of each text protocol: the
// verdict must follow the order of the answers, and be reached without
// waiting for silence where the first reply tells.
func TestSentinelJudge(t *testing.T) {
	cases := []struct {
		name   string
		p      starttls.Protocol
		capa   bool
		lines  []string // then the deadline
		pipe   bool     // the probe was executed
		waited bool     // decided only by the deadline
	}{
		{"smtp safe", starttls.SMTP, true, []string{"250-mx.test", "250-PIPELINING", "250 8BITMIME"}, false, false},
		{"smtp safe, bare EHLO reply", starttls.SMTP, true, []string{"250 mx.test"}, false, true},
		{"smtp vulnerable", starttls.SMTP, true, []string{"250 2.0.0 Ok", "250-mx.test", "250 8BITMIME"}, true, false},
		{"smtp vulnerable, bare EHLO reply", starttls.SMTP, true, []string{"250 2.0.0 Ok", "250 mx.test"}, true, false},
		{"lmtp vulnerable", starttls.LMTP, true, []string{"250 2.0.0 Ok", "250-lmtp.test", "250 PIPELINING"}, true, false},
		{"imap safe", starttls.IMAP, true, []string{"yy OK NOOP done"}, false, false},
		{"imap safe, untagged first", starttls.IMAP, true, []string{"* 3 EXISTS", "yy OK NOOP done"}, false, false},
		{"imap vulnerable", starttls.IMAP, true, []string{"zz OK NOOP done", "yy OK NOOP done"}, true, false},
		{"pop3 safe", starttls.POP3, true, []string{"-ERR unknown command"}, false, false},
		{"pop3 safe, no CAPA before", starttls.POP3, false, []string{"-ERR unknown command"}, false, true},
		{"pop3 vulnerable", starttls.POP3, true, []string{"+OK capabilities", "USER", ".", "-ERR unknown command"}, true, false},
		{"pop3 vulnerable, CAPA refused", starttls.POP3, false, []string{"-ERR no CAPA", "-ERR unknown command"}, true, false},
		{"nntp safe", "nntp", true, []string{"100 Help text follows", "date", "."}, false, false},
		{"nntp vulnerable", "nntp", true, []string{"111 20261126120000", "100 Help text follows", "."}, true, false},
		{"nntp safe, no HELP", "nntp", true, []string{"500 What?"}, false, true},
		{"sieve safe", "sieve", true, []string{`NO "unknown command"`}, false, false},
		{"sieve vulnerable", "sieve", true, []string{`OK "NOOP done"`, `NO "unknown command"`}, true, false},
		{"ftp safe", "ftp", true, []string{"200 NOOP ok."}, false, false},
		{"ftp vulnerable", "ftp", true, []string{"211-Features:", " EPSV", "211 End", "200 NOOP ok."}, true, false},
		{"ftp vulnerable, FEAT refused", "ftp", true, []string{"500 unknown", "200 NOOP ok."}, true, false},
		{"irc safe", "irc", true, []string{":irc.test NOTICE * :hello", ":irc.test PONG irc.test :starttls-sentinel"}, false, false},
		{"irc vulnerable", "irc", true, []string{":irc.test PONG irc.test :starttls-check", ":irc.test PONG irc.test :starttls-sentinel"}, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			read := func() (string, error) {
				if i >= len(tc.lines) {
					return "", io.EOF // the deadline
				}
				i++
				return tc.lines[i-1], nil
			}
			got, how := firstReplyIfPipelined(read, tc.p, tc.capa, nil)
			if (len(got) > 0) != tc.pipe {
				t.Fatalf("evidence %q (%s), want executed=%v", got, how, tc.pipe)
			}
			if tc.pipe && got[0] != tc.lines[0] {
				t.Errorf("evidence %q does not start with the first reply %q", got, tc.lines[0])
			}
			if !tc.pipe && (how == "answered our own command first") == tc.waited {
				t.Errorf("%s: waited=%v, want %v", how, !tc.waited, tc.waited)
			}
			if _, ok := sentinels[tc.p]; !ok {
				t.Errorf("no sentinel for %s", tc.p)
			}
		})
	}
}
