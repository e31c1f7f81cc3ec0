package scan

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/internal/certinfo"
)

// statusOf reads the phase from the library's own error text, so this
// breaks if ProtocolError's format changes, rather than the greeting
// timeouts quietly becoming plain timeouts.
func TestStatusOfPhases(t *testing.T) {
	timeout := fmt.Errorf("%w: %w", starttls.ErrTimeout, os.ErrDeadlineExceeded)
	pe := func(proto starttls.Protocol, peer string, ph starttls.Phase) string {
		return (&starttls.ProtocolError{Protocol: proto, Peer: peer, Phase: ph, Err: timeout}).Error()
	}
	chain := []certinfo.Cert{{Subject: "CN=x"}}
	// No loopback address leaves a SYN unanswered, so a connect timeout
	// is only ever seen here, as the library classifies its error.
	connect := &starttls.ProtocolError{Protocol: starttls.SMTP, Peer: "192.0.2.1:25", Phase: starttls.PhaseConnect, Err: os.ErrDeadlineExceeded}
	for _, c := range []struct {
		name string
		r    check.Report
		want starttls.Status
	}{
		{"greeting", check.Report{Status: starttls.StatusTimeout, Error: pe(starttls.SMTP, "127.0.0.2:25", starttls.PhaseGreeting)}, StatusGreetingTimeout},
		{"greeting v6 submission", check.Report{Status: starttls.StatusTimeout, Error: pe(starttls.Submission, "[::1]:587", starttls.PhaseGreeting)}, StatusGreetingTimeout},
		{"connect", check.Report{Status: starttls.StatusOf(connect), Error: connect.Error()}, starttls.StatusConnectTimeout},
		{"capabilities", check.Report{Status: starttls.StatusTimeout, Error: pe(starttls.SMTP, "127.0.0.2:25", starttls.PhaseCaps)}, starttls.StatusTimeout},
		{"handshake", check.Report{Status: starttls.StatusTimeout, Error: pe(starttls.IMAP, "127.0.0.2:143", starttls.PhaseHandshake)}, starttls.StatusTimeout},
		{"engine deadline", check.Report{Status: starttls.StatusTimeout, Error: "target deadline passed: " + context.DeadlineExceeded.Error()}, starttls.StatusTimeout},
		{"closed in greeting", check.Report{Status: starttls.StatusClosed, Error: pe(starttls.SMTP, "127.0.0.2:25", starttls.PhaseGreeting)}, starttls.StatusClosed},
		{"verified", check.Report{Status: starttls.StatusSuccess, Certificate: check.CertificateInfo{Chain: chain, Verification: certinfo.Verification{OK: true}}}, starttls.StatusSuccess},
		{"untrusted", check.Report{Status: starttls.StatusSuccess, Certificate: check.CertificateInfo{Chain: chain, Verification: certinfo.Verification{Error: "x509: unknown authority"}}}, starttls.StatusCertificate},
		{"no chain", check.Report{Status: starttls.StatusSuccess}, starttls.StatusSuccess},
		{"handshake-error keeps its class", check.Report{Status: starttls.StatusHandshake, Certificate: check.CertificateInfo{Chain: chain}}, starttls.StatusHandshake},
	} {
		if got, msg := statusOf(&c.r); got != c.want {
			t.Errorf("%s: %s (%q), want %s", c.name, got, msg, c.want)
		}
	}
}
