package peer

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Dovecot is a running private Dovecot instance.
type Dovecot struct {
	IMAPAddr, IMAPSAddr, POP3Addr, POP3SAddr string
	SieveAddr                                string // with DovecotOptions.Sieve
	LMTPAddr                                 string // with DovecotOptions.LMTP
	*PKI
	Version        string
	Dir            string
	User, Password string // a user who can log in (after TLS)
}

const dovecotIP = "127.0.0.2"

// DovecotOptions tune the instance.
type DovecotOptions struct {
	// Conf lines are appended to dovecot.conf (later settings win), e.g.
	// legacy TLS settings.
	Conf []string
	// Sieve adds ManageSieve (package dovecot-managesieved) on SieveAddr.
	Sieve bool
	// LMTP adds LMTP with STARTTLS (package dovecot-lmtpd) on LMTPAddr.
	LMTP bool
}

// StartDovecot starts Dovecot in the foreground on four free loopback ports.
func StartDovecot(t testing.TB, o DovecotOptions) *Dovecot {
	t.Helper()
	bins := Require(t, "dovecot")
	if o.Sieve {
		Require(t, "managesieve-login")
	}
	if o.LMTP {
		Require(t, "lmtp")
	}
	if os.Geteuid() != 0 {
		Unavailable(t, "a private Dovecot instance needs root (it switches to its own users)")
	}
	dcUser, err := user.Lookup("dovecot")
	if err != nil {
		t.Fatalf("dovecot user: %v", err)
	}
	dir := tempDir(t, "dovecot")
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	uid, _ := strconv.Atoi(dcUser.Uid)
	gid, _ := strconv.Atoi(dcUser.Gid)
	if err := os.Chown(mail, uid, gid); err != nil {
		t.Fatal(err)
	}
	pki := newPKI(t, dir, "mail.test")
	// Dovecot treats a client whose address equals its own as secure and then
	// offers plaintext login before TLS; listening on 127.0.0.2 (clients come
	// from 127.0.0.1) keeps the tests honest about the pre-TLS state.
	a := func() string { return fmt.Sprintf("%s:%d", dovecotIP, FreePort(t)) }
	d := &Dovecot{PKI: pki, Dir: dir, User: "alice", Password: "secret",
		IMAPAddr: a(), IMAPSAddr: a(), POP3Addr: a(), POP3SAddr: a()}
	d.Version, _ = run(t, 10*time.Second, bins["dovecot"], "--version")
	writeFile(t, filepath.Join(dir, "users"), d.User+":{PLAIN}"+d.Password+"\n", 0o644)
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	conf := []string{
		"base_dir = " + filepath.Join(dir, "run"),
		"state_dir = " + filepath.Join(dir, "state"),
		"log_path = " + filepath.Join(dir, "dovecot.log"),
		"listen = " + dovecotIP,
		"protocols = imap pop3",
		"ssl = yes",
		"ssl_cert = <" + pki.CertFile,
		"ssl_key = <" + pki.KeyFile,
		"ssl_min_protocol = TLSv1.2",
		"disable_plaintext_auth = yes",
		"auth_mechanisms = plain login",
		"first_valid_uid = 1",
		"default_internal_user = dovecot",
		"default_login_user = dovenull",
		"mail_location = maildir:" + mail + "/%u",
		"passdb {\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u " + filepath.Join(dir, "users") + "\n}",
		fmt.Sprintf("userdb {\n  driver = static\n  args = uid=%d gid=%d home=%s/%%u\n}", uid, gid, mail),
		"service imap-login {\n  inet_listener imap {\n    port = " + port(d.IMAPAddr) + "\n  }\n  inet_listener imaps {\n    port = " + port(d.IMAPSAddr) + "\n    ssl = yes\n  }\n}",
		"service pop3-login {\n  inet_listener pop3 {\n    port = " + port(d.POP3Addr) + "\n  }\n  inet_listener pop3s {\n    port = " + port(d.POP3SAddr) + "\n    ssl = yes\n  }\n}",
	}
	if o.Sieve {
		d.SieveAddr = a()
		conf[4] = "protocols = imap pop3 sieve"
		conf = append(conf, "service managesieve-login {\n  inet_listener sieve {\n    port = "+port(d.SieveAddr)+"\n  }\n}")
	}
	if o.LMTP {
		d.LMTPAddr = a()
		conf[4] += " lmtp"
		// Deliveries go to the static userdb's uid; LMTP itself runs as root
		// as in Debian's default and switches per recipient.
		conf = append(conf, "service lmtp {\n  inet_listener lmtp {\n    address = "+dovecotIP+"\n    port = "+port(d.LMTPAddr)+"\n  }\n}",
			"lmtp_save_to_detail_mailbox = no")
	}
	conf = append(conf, o.Conf...)
	cfg := filepath.Join(dir, "dovecot.conf")
	writeFile(t, cfg, strings.Join(conf, "\n")+"\n", 0o644)

	startDaemon(t, dir, "stdout", bins["dovecot"], "-F", "-c", cfg)
	addrs := []string{d.IMAPAddr, d.IMAPSAddr, d.POP3Addr, d.POP3SAddr}
	if o.Sieve {
		addrs = append(addrs, d.SieveAddr)
	}
	if o.LMTP {
		addrs = append(addrs, d.LMTPAddr)
	}
	waitPorts(t, filepath.Join(dir, "dovecot.log"), addrs...)
	return d
}

// Log returns the instance's log.
func (d *Dovecot) Log() string { return tail(filepath.Join(d.Dir, "dovecot.log")) }
