package ftp

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// check reads FTP's AUTH capability without its security mechanisms,
// and asks inside TLS for PROT before PBSZ and for CCC.
var loginProbes = &registry.ConnProbes{
	AuthArgs: loginWithoutTLSMechs,
	Sessions: []registry.SessionProbe{{
		Name:     "ftp-protection",
		Verdicts: []string{"ftp-prot-before-pbsz", "ftp-ccc-accepted"},
		Run:      loginProtection,
	}},
}

// loginWithoutTLSMechs drops FTP's security mechanisms (RFC 4217) from
// AUTH's arguments: "AUTH TLS" is the upgrade itself, not a login.
func loginWithoutTLSMechs(args []string) []string {
	var out []string
	for _, a := range args {
		for _, m := range strings.Split(a, ";") {
			switch strings.ToUpper(strings.TrimSpace(m)) {
			case "TLS", "SSL", "TLS-C", "TLS-P", "":
			default:
				out = append(out, m)
			}
		}
	}
	return out
}

// loginProtection asks, inside TLS and before anything else, for PROT P
// without PBSZ (RFC 4217 §9: PBSZ must come first, 503 otherwise), then
// for CCC, which drops the control channel back to plaintext where every
// later command can be read and injected (RFC 4217 §6: servers should be
// able to refuse it by policy).
func loginProtection(s registry.ProbeSession, report func(name, verdict, evidence string)) {
	ask := func(cmd string) (int, string, error) {
		if _, err := s.Write([]byte(cmd + "\r\n")); err != nil {
			return 0, "", err
		}
		var lines []string
		for i := 0; i < 50; i++ {
			line, err := s.ReadLine()
			if err != nil {
				return 0, "", err
			}
			lines = append(lines, line)
			if smtp.ReplyEnds(line) {
				code, _ := strconv.Atoi(line[:min(3, len(line))])
				return code, strings.Join(lines, "\r\n"), nil
			}
		}
		return 0, "", fmt.Errorf("reply to %s longer than 50 lines", cmd)
	}

	code, reply, err := ask("PROT P")
	if err != nil {
		report("ftp-prot-before-pbsz", "error: "+err.Error(), "")
		return
	}
	loginJudgeReply(report, "ftp-prot-before-pbsz", code, reply, fmt.Sprintf("inside TLS, before any PBSZ, %q was answered %q", "PROT P", reply))

	if _, _, err := ask("PBSZ 0"); err != nil {
		report("ftp-ccc-accepted", "error: "+err.Error(), "")
		return
	}
	code, reply, err = ask("CCC")
	if err != nil {
		report("ftp-ccc-accepted", "error: "+err.Error(), "")
		return
	}
	// After a 2xx the server waits for our close_notify and plaintext;
	// check closes the session instead.
	loginJudgeReply(report, "ftp-ccc-accepted", code, reply, fmt.Sprintf("inside TLS %q was answered %q", "CCC", reply))
}

// loginJudgeReply reports the answer to a command the server should
// refuse: a 2xx accepted it (fail, with evidence); a 530 wants a login
// first (vsftpd, for one), so the order cannot be seen; anything else
// refused it.
func loginJudgeReply(report func(name, verdict, evidence string), name string, code int, reply, evidence string) {
	switch {
	case code >= 200 && code < 300:
		report(name, "fail", evidence)
	case code == 530:
		report(name, "inconclusive: "+reply, "")
	default:
		report(name, "pass", "")
	}
}
