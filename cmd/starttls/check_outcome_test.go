package main

import (
	"encoding/json"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/loopback"
)

// rawServer runs script on each accepted connection (5 s at most).
func rawServer(t *testing.T, script func(c net.Conn)) string {
	t.Helper()
	return loopback.Serve(t, 5*time.Second, script)
}

// A check whose main session failed is a verdict: its finding id in the
// JSON report, the dialogue in the human one, and a non-zero exit status
// (3 only when nothing answered), whatever --fail-on says.
func TestCheckFailedSessionExit(t *testing.T) {
	silent := fakeLine(t, nil)
	garbage := fakeLine(t, []string{"SSH-2.0-OpenSSH_9.2"})
	hangUp := fakeLine(t, []string{"220 fake.test ESMTP"})
	endless := rawServer(t, func(c net.Conn) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i < 1600; i++ { // 100 MB at most
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
	})
	closeAfterGreeting := rawServer(t, func(c net.Conn) {
		_, _ = c.Write([]byte("220 fake.test ESMTP\r\n"))
		buf := make([]byte, 512)
		_, _ = c.Read(buf) // EHLO, then hang up
	})
	cases := []struct {
		name, addr, id string
		status         starttls.Status
		code           int
		human          string // what the human report must show
	}{
		{"silent", silent, "no-greeting", starttls.StatusTimeout, exitFindings, "nothing received"},
		{"endless line", endless, "protocol-error", starttls.StatusProtocol, exitFindings, "line too long"},
		{"garbage greeting", garbage, "protocol-error", starttls.StatusProtocol, exitFindings, "S: SSH-2.0-OpenSSH_9.2"},
		{"stall after greeting", hangUp, "timeout", starttls.StatusTimeout, exitFindings, "S: 220 fake.test ESMTP"},
		{"close after greeting", closeAfterGreeting, "connection-closed", starttls.StatusClosed, exitFindings, "C: EHLO"},
		{"connect refused", loopback.UnusedAddr(t), "connect-failed", starttls.StatusConnectRefused, exitConnect, "connect-failed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			code, out, errs := runCLI(t, "", "check", "--json", "--fail-on", "critical", "--timeout", "400ms", "smtp://"+tc.addr)
			if code != tc.code {
				t.Errorf("exit %d, want %d; stderr %s", code, tc.code, errs)
			}
			var r struct {
				Status   starttls.Status `json:"status"`
				Findings []struct {
					ID string `json:"id"`
				} `json:"findings"`
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if r.Status != tc.status || len(r.Findings) != 1 || r.Findings[0].ID != tc.id {
				t.Errorf("status %s findings %+v, want %s with only %s", r.Status, r.Findings, tc.status, tc.id)
			}
			code, out, _ = runCLI(t, "", "check", "--timeout", "400ms", "smtp://"+tc.addr)
			if code != tc.code || !strings.Contains(out, tc.human) || !strings.Contains(out, tc.id) {
				t.Errorf("human report (exit %d) lacks %q or %s:\n%s", code, tc.human, tc.id, out)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("two checks took %v", d)
			}
		})
	}
}
