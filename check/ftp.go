package check

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
)

// ftpProtection asks, inside TLS and before anything else, for PROT P
// without PBSZ (RFC 4217 §9: PBSZ must come first, 503 otherwise), then
// for CCC, which drops the control channel back to plaintext where every
// later command can be read and injected (RFC 4217 §6: servers should be
// able to refuse it by policy).
func (c *run) ftpProtection(ctx context.Context) {
	start := time.Now()
	if c.info.Base != starttls.FTP || c.info.Implicit {
		c.verdict("ftp-prot-before-pbsz", "n/a", 0)
		c.verdict("ftp-ccc-accepted", "n/a", 0)
		return
	}
	cfg := c.clientConfig()
	cfg.PipelineAfterUpgrade = []byte{} // no PBSZ/PROT of its own inside TLS
	conn, err := starttls.Dial(ctx, c.t.Protocol, c.t.Addr(), cfg)
	if err != nil {
		c.verdict("ftp-prot-before-pbsz", "error: "+err.Error(), time.Since(start))
		c.verdict("ftp-ccc-accepted", "error: "+err.Error(), time.Since(start))
		return
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.o.Timeout))
	ask := func(cmd string) (int, string, error) {
		if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
			return 0, "", err
		}
		var lines []string
		for i := 0; i < 50; i++ {
			line, err := conn.ReadLine()
			if err != nil {
				return 0, "", err
			}
			lines = append(lines, line)
			if replyEnds("ftp", line) {
				code, _ := strconv.Atoi(line[:min(3, len(line))])
				return code, strings.Join(lines, "\r\n"), nil
			}
		}
		return 0, "", fmt.Errorf("reply to %s longer than 50 lines", cmd)
	}

	code, reply, err := ask("PROT P")
	switch {
	case err != nil:
		c.verdict("ftp-prot-before-pbsz", "error: "+err.Error(), time.Since(start))
		return
	case code >= 200 && code < 300:
		c.verdict("ftp-prot-before-pbsz", "fail", time.Since(start))
		c.add(newFinding("ftp-prot-before-pbsz", fmt.Sprintf("inside TLS, before any PBSZ, %q was answered %q", "PROT P", reply)))
	case code == 530:
		// vsftpd, for one, wants a login first: the order cannot be seen.
		c.verdict("ftp-prot-before-pbsz", "inconclusive: "+reply, time.Since(start))
	default:
		c.verdict("ftp-prot-before-pbsz", "pass", time.Since(start))
	}

	t := time.Now()
	if _, _, err := ask("PBSZ 0"); err != nil {
		c.verdict("ftp-ccc-accepted", "error: "+err.Error(), time.Since(t))
		return
	}
	code, reply, err = ask("CCC")
	switch {
	case err != nil:
		c.verdict("ftp-ccc-accepted", "error: "+err.Error(), time.Since(t))
	case code >= 200 && code < 300:
		// The server now waits for our close_notify and plaintext; the
		// deferred Close ends the session instead.
		c.verdict("ftp-ccc-accepted", "fail", time.Since(t))
		c.add(newFinding("ftp-ccc-accepted", fmt.Sprintf("inside TLS %q was answered %q", "CCC", reply)))
	case code == 530:
		c.verdict("ftp-ccc-accepted", "inconclusive: "+reply, time.Since(t))
	default:
		c.verdict("ftp-ccc-accepted", "pass", time.Since(t))
	}
}
