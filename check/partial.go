package check

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// partialProbes are unfinished lines pipelined after the upgrade command
// (security catalogue §(a)1, "also try a partial line"). A server that
// drops the whole lines it buffered at STARTTLS but keeps an unfinished
// one in its line assembler glues it to the first line it reads inside
// TLS, the probe's sentinel: IMAP then answers the tag "zz" instead of
// "yy", SMTP answers "RSETEHLO starttls-check" with an error instead of
// the EHLO reply. An attacker's fragment would be completed by the
// client's first command inside TLS.
var partialProbes = probeTable(func(p registry.Probes) (string, bool) { return p.Partial, p.Partial != "" })

// partialLine runs the partial-line variant; it returns the verdict and,
// when the fragment was kept, the evidence.
func (c *run) partialLine(ctx context.Context) (verdict, evidence string) {
	probe := partialProbes[c.info.Base]
	judge := connProbesOf(c.info.Base).PartialJudge
	if judge == nil {
		return "error: no judge of the partial line", ""
	}
	cfg := c.clientConfig()
	cfg.PipelineAfterUpgrade = []byte(probe)
	conn, err := starttls.Dial(ctx, c.t.Protocol, c.t.Addr(), cfg)
	if err != nil {
		return "pass (" + string(starttls.StatusOf(err)) + ")", ""
	}
	defer conn.Close()
	_ = conn.SetReadDeadline(time.Now().Add(min(injectionWait, c.o.Timeout)))
	if !sendSentinel(conn, c.info.Base) {
		return "error: sentinel not sent", ""
	}
	sentinel := strings.TrimSpace(sentinels[c.info.Base])
	for i := 0; i < 50; i++ {
		line, err := conn.ReadLine()
		if err != nil {
			return "pass (no reply inside TLS)", ""
		}
		switch judge(line) {
		case registry.Ignore:
			continue
		case registry.Ours:
			return "pass", ""
		case registry.Undecided:
			return fmt.Sprintf("inconclusive: %q answered %q", sentinel, line), ""
		}
		return "fail", fmt.Sprintf("sent %q in one segment, the last line unfinished; inside TLS the server answered our %q with %q: it kept the fragment and joined it to the first line inside TLS",
			"STARTTLS\r\n"+probe, sentinel, line)
	}
	return "inconclusive: no decision in 50 lines", ""
}
