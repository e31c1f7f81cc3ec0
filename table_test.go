package starttls

import (
	"testing"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// The protocol folders name phases with internal/proto/dialog's
// constants; go doc shows ours as plain strings, so they are written
// twice and must agree.
func TestPhasesMatchDialog(t *testing.T) {
	for ours, theirs := range map[Phase]string{PhaseGreeting: dialog.PhaseGreeting, PhaseCaps: dialog.PhaseCaps,
		PhaseStartTLS: dialog.PhaseStartTLS, PhasePostTLS: dialog.PhasePostTLS} {
		if string(ours) != theirs {
			t.Errorf("Phase %q, dialog says %q", ours, theirs)
		}
	}
}

// Every exported constant names a scheme some protocol folder registered.
func TestConstantsRegistered(t *testing.T) {
	for _, p := range []Protocol{SMTP, Submission, SMTPS, LMTP, IMAP, IMAPS, POP3, POP3S, XMPP, XMPPServer,
		XMPPS, XMPPSServer, LDAP, LDAPS, FTP, FTPS, NNTP, NNTPS, Sieve, Postgres, PostgresDirect, MySQL,
		IRC, IRCS, HTTP, HTTPS} {
		if lookupSpec(p) == nil {
			t.Errorf("%s: no folder registered it", p)
		}
	}
	if sp := lookupSpec(PostgresDirect); !sp.implicit || sp.base != Postgres || len(sp.alpn) != 1 {
		t.Errorf("postgres-direct: %+v", sp)
	}
}
