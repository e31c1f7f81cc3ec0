package peer

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
)

// Postfix is a running private Postfix instance.
type Postfix struct {
	SMTPAddr       string // port-25-like smtpd: STARTTLS offered (security level may)
	SubmissionAddr string // submission: TLS required (security level encrypt)
	SMTPSAddr      string // implicit TLS (wrapper mode)
	*PKI
	Version string
	Dir     string
}

// PostfixOptions tune the instance.
type PostfixOptions struct {
	// MainCF lines ("name = value") set main.cf parameters, replacing the
	// instance's default for the same name, e.g. legacy TLS settings.
	MainCF []string
	// Leaf, when set, makes the certificate smtpd serves instead of the
	// default one (e.g. expired or for another name); it gets the
	// instance's CA, which stays the one in CAFile.
	Leaf func(ca *certs.CA) (*certs.Leaf, error)
}

// postfixServices are the daemons a minimal instance needs besides smtpd,
// none chrooted so that they find the temporary directory.
const postfixServices = `postlog   unix-dgram n  -       n       -       1       postlogd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
`

// StartPostfix starts a Postfix instance on three free loopback ports.
func StartPostfix(t testing.TB, o PostfixOptions) *Postfix {
	t.Helper()
	bins := Require(t, "postfix", "postconf")
	if os.Geteuid() != 0 {
		Unavailable(t, "a private Postfix instance needs root (its daemons switch to the postfix user)")
	}
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatalf("postfix user: %v", err)
	}
	// Not t.TempDir: its 0700 parents would lock out the postfix user.
	dir, err := os.MkdirTemp("", "starttls-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(dir, 0o755)
	for _, d := range []string{"etc", "spool", "data"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := strconv.Atoi(pfUser.Uid)
	if err := os.Chown(filepath.Join(dir, "data"), uid, -1); err != nil {
		t.Fatal(err)
	}
	pki := newPKI(t, dir, "mail.test")
	if o.Leaf != nil {
		leaf, err := o.Leaf(pki.CA)
		if err != nil {
			t.Fatal(err)
		}
		if pki.CertFile, pki.KeyFile, err = leaf.WriteFiles(dir, "served"); err != nil {
			t.Fatal(err)
		}
	}
	p := &Postfix{PKI: pki, Dir: dir,
		SMTPAddr: addr(FreePort(t)), SubmissionAddr: addr(FreePort(t)), SMTPSAddr: addr(FreePort(t))}
	p.Version, _ = run(t, 10*time.Second, bins["postconf"], "-dh", "mail_version")

	main := []string{
		"compatibility_level = 3.6",
		"queue_directory = " + filepath.Join(dir, "spool"),
		"data_directory = " + filepath.Join(dir, "data"),
		"mail_owner = postfix",
		"setgid_group = postdrop",
		"inet_interfaces = 127.0.0.1",
		"inet_protocols = ipv4",
		"myhostname = mail.test",
		"mydestination = mail.test, localhost",
		"mynetworks = 127.0.0.0/8",
		"maillog_file = " + filepath.Join(dir, "maillog"),
		"maillog_file_prefixes = " + dir,
		"alias_maps =",
		"alias_database =",
		"smtpd_tls_chain_files = " + pki.KeyFile + ", " + pki.CertFile,
		"smtpd_tls_security_level = may",
		"smtpd_tls_auth_only = yes",
		"smtpd_tls_protocols = >=TLSv1.2",
		"smtpd_tls_mandatory_protocols = >=TLSv1.2",
		"smtpd_client_restrictions =",
		"smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination",
	}
	main = mergeMainCF(main, o.MainCF)
	writeFile(t, filepath.Join(dir, "etc", "main.cf"), strings.Join(main, "\n")+"\n", 0o644)
	master := fmt.Sprintf("%s inet n - n - - smtpd\n", p.SMTPAddr) +
		fmt.Sprintf("%s inet n - n - - smtpd -o smtpd_tls_security_level=encrypt\n", p.SubmissionAddr) +
		fmt.Sprintf("%s inet n - n - - smtpd -o smtpd_tls_wrappermode=yes -o smtpd_tls_security_level=encrypt\n", p.SMTPSAddr) +
		postfixServices
	writeFile(t, filepath.Join(dir, "etc", "master.cf"), master, 0o644)

	// Every Postfix program logs its configuration warnings at start-up,
	// and postlogd logs its own to the postlog socket it has not begun to
	// read yet: when the daemons' warnings fill that socket's queue first
	// (net.unix.max_dgram_qlen, 10 by default; it happens on a loaded
	// machine), postlogd blocks on its own socket for good and so does every
	// smtpd at its first log line, with connections accepted and never
	// greeted. So the configuration must be warning-free.
	for _, flag := range []string{"-n", "-M"} {
		if out, err := run(t, 10*time.Second, bins["postconf"], "-c", filepath.Join(dir, "etc"), flag); err != nil || strings.Contains(out, "warning:") {
			t.Fatalf("postconf %s on the generated configuration: %v\n%s", flag, err, out)
		}
	}

	// start-fg keeps master in the foreground, so that the test owns the
	// process: "postfix start" daemonizes, and "postfix stop" at cleanup
	// sometimes left masters running after their directory was gone.
	etc := filepath.Join(dir, "etc")
	t.Cleanup(func() { os.RemoveAll(dir) })
	// master detaches into its own session; its pid file finds it after the
	// wrapper has been stopped (cleanups run last-registered first).
	t.Cleanup(func() { stopPidFile(filepath.Join(dir, "spool", "pid", "master.pid")) })
	d := startDaemonStop(t, dir, "master", syscall.SIGTERM, bins["postfix"], "-c", etc, "start-fg")
	d.log = filepath.Join(dir, "maillog")
	d.ready(t, p.SMTPAddr, p.SubmissionAddr, p.SMTPSAddr)
	return p
}

// mergeMainCF sets each "name = value" of extra in lines, in place of a
// line for the same name or else at the end.
func mergeMainCF(lines, extra []string) []string {
	name := func(l string) string { n, _, _ := strings.Cut(l, "="); return strings.TrimSpace(n) }
	out := append([]string(nil), lines...)
next:
	for _, e := range extra {
		for i, l := range out {
			if name(l) == name(e) {
				out[i] = e
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// Log returns the instance's mail log.
func (p *Postfix) Log() string { return tail(filepath.Join(p.Dir, "maillog")) }
