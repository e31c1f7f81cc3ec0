package main

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeLine is a hand-written line server: it sends replies[0] as the
// greeting, then one reply per line the client sends, then reads (and
// ignores) the rest until the client leaves. A nil replies stalls: it
// accepts and never speaks. Each connection gets the same script.
func fakeLine(t *testing.T, replies []string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				br := bufio.NewReader(c)
				for i, r := range replies {
					if i > 0 {
						if _, err := br.ReadString('\n'); err != nil {
							return
						}
					}
					if _, err := c.Write([]byte(r + "\r\n")); err != nil {
						return
					}
				}
				_, _ = br.WriteTo(discard{})
			}()
		}
	}()
	return l.Addr().String()
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// The one-line errors of connect name the condition, and every failure
// exits non-zero.
func TestConnectExitConditions(t *testing.T) {
	refused := fakeLine(t, []string{"220 fake ESMTP", "250-fake\r\n250 STARTTLS", "454 4.7.0 TLS not available"})
	injected := fakeLine(t, []string{"220 fake ESMTP", "250-fake\r\n250 STARTTLS", "220 2.0.0 go ahead\r\n250-injected"})
	stalled := fakeLine(t, nil)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"refused", []string{"connect", "smtp://" + refused}, "refused"},
		{"injection", []string{"connect", "smtp://" + injected}, "injection"},
		{"timeout", []string{"connect", "--timeout", "300ms", "smtp://" + stalled}, "timeout"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := runCLI(t, "", tc.args...)
			if code == 0 {
				t.Fatalf("exit 0, out %s", out)
			}
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q does not name %q", errs, tc.want)
			}
			if n := strings.Count(strings.TrimSpace(errs), "\n"); n > 0 {
				t.Errorf("error is not one line: %q", errs)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("took %v", d)
			}
		})
	}
}
