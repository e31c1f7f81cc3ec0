package clienttest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

var writeDocs = flag.String("write-docs", "", "write the compatibility table of real clients to this Markdown file")

// realClient is a client from Debian (or Go's standard library) and the
// scenarios it is recorded to fail. A change in its behaviour fails the
// test with the difference.
type realClient struct {
	name     string
	proto    starttls.Protocol
	bin      string // binary that must be installed ("" for in-process)
	command  []string
	client   func(ctx context.Context, addr, caFile string) error
	version  []string // command printing the version
	wantFail []string
	// timeout per scenario when not the default 10 s (clients that hang
	// until killed on some scenarios).
	timeout time.Duration
	// controlFails records a client that fails even the honest server
	// (control is then in wantFail): its run does not count as a
	// compatibility result, but what it leaked is still asserted.
	controlFails bool
}

// msmtpSh sends msg.eml with STARTTLS required and SASL PLAIN.
const msmtpSh = `exec msmtp --host="$1" --port="$2" --tls=on --tls-starttls=on --tls-trust-file="$3" \
  --auth=plain --user=user --passwordeval='echo secret' --from=a@x.test --timeout=5 b@x.test < "$4"
`

// fetchmailSh polls once (PROTO HOST PORT CA) with a run-control file in
// a throwaway HOME: STARTTLS required (--sslproto auto), the certificate
// checked against the CA, mail delivered to an MDA that discards it. Its
// own lock file: as root fetchmail locks /var/run/fetchmail.pid, and the
// IMAP and POP3 runs overlap.
// -v prints the dialogue, server text included: the spoof scenarios see
// whether it is printed raw.
const fetchmailSh = `h=$(mktemp -d) || exit 1
trap 'rm -rf "$h"' EXIT
printf 'set no syslog\npoll %s port %s proto %s timeout 5\n  user "user" password "secret" sslcertck sslcertfile "%s" mda "cat >/dev/null"\n' "$2" "$3" "$1" "$4" > "$h/rc"
chmod 600 "$h/rc"
HOME=$h FETCHMAILHOME=$h fetchmail --nodetach -N -v -f "$h/rc" --pidfile "$h/pid" --nokeep --sslproto auto
`

// neomuttSh sends msg.eml in batch mode (HOST PORT CA MSG) through
// smtp_url with ssl_starttls and ssl_force_tls; certificate_file is the
// trusted CA. Batch mode needs no terminal; reading IMAP would.
const neomuttSh = `h=$(mktemp -d) || exit 1
trap 'rm -rf "$h"' EXIT
cat > "$h/muttrc" <<RC
set from = "a@x.test"
set use_from = yes
set smtp_url = "smtp://user@$1:$2/"
set smtp_pass = "secret"
set smtp_authenticators = "plain"
set ssl_starttls = yes
set ssl_force_tls = yes
set certificate_file = "$3"
set record = ""
set folder = "$h"
set spoolfile = "$h/spool"
set tmpdir = "$h"
RC
HOME=$h TERM=dumb neomutt -n -F "$h/muttrc" -s clienttest b@x.test < "$4"
`

// sieveConnectSh lists the scripts (HOST PORT CA), the password on fd 3.
const sieveConnectSh = `exec 3<<PW
secret
PW
exec sieve-connect --server "$1" --port "$2" --user user --passwordfd 3 --tlscafile "$3" --list
`

// ldapsearchSh searches with a simple bind (HOST:PORT CA -Z|-ZZ); the CA
// comes from the environment, the only way ldapsearch takes one.
const ldapsearchSh = `LDAPTLS_CACERT="$2" exec ldapsearch -H "ldap://$1" "$3" -x -D cn=user,dc=test -w secret \
  -b dc=test -o nettimeout=5 -l 5
`

// psqlSh runs one query (HOST PORT SSLMODE [CA]) with the password from
// the environment, in a throwaway HOME: sslmode=require verifies the
// certificate when ~/.postgresql/root.crt exists, so no such file may.
const psqlSh = `h=$(mktemp -d) || exit 1
trap 'rm -rf "$h"' EXIT
conn="host=$1 port=$2 user=user dbname=db sslmode=$3"
[ -n "$4" ] && conn="$conn sslrootcert=$4"
HOME=$h PGPASSWORD=secret PGCONNECT_TIMEOUT=5 psql -w "$conn" -c "select 1"
`

const pySMTP = `import smtplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = smtplib.SMTP(host, port, timeout=5)
s.starttls(context=ssl.create_default_context(cafile=ca))
s.login("user", "secret")
s.sendmail("a@x.test", ["b@x.test"], "Subject: t\r\n\r\nhello\r\n")
s.quit()
`

const pyIMAP = `import imaplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
m = imaplib.IMAP4(host, port, timeout=5)
m.starttls(ssl_context=ssl.create_default_context(cafile=ca))
m.login("user", "secret")
m.select("INBOX")
m.logout()
`

const pyPOP3 = `import poplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = poplib.POP3(host, port, timeout=5)
p.stls(context=ssl.create_default_context(cafile=ca))
p.user("user")
p.pass_("secret")
p.stat()
p.quit()
`

// goSendMail is net/smtp.SendMail's own logic (STARTTLS only if
// advertised, then AUTH) with the test CA added: the way most Go programs
// send mail.
func goSendMail(ctx context.Context, addr, caFile string) error {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	host, _, _ := net.SplitHostPort(addr)
	d := net.Dialer{Timeout: 5 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, RootCAs: pool}); err != nil {
			return err
		}
	}
	if ok, _ := c.Extension("AUTH"); ok {
		if err := c.Auth(smtp.PlainAuth("", "user", "secret", host)); err != nil {
			return err
		}
	}
	if err := c.Mail("a@x.test"); err != nil {
		return err
	}
	if err := c.Rcpt("b@x.test"); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	fmt.Fprint(w, "Subject: t\r\n\r\nhello\r\n")
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func realClients(t *testing.T) []realClient {
	dir := t.TempDir()
	script := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	msg := script("msg.eml", "Subject: clienttest\r\n\r\nhello\r\n")
	curlSMTP := func(tlsFlag string) []string {
		return []string{"curl", "-sS", "--max-time", "5", tlsFlag, "--cacert", "{ca}", "smtp://{addr}",
			"--mail-from", "a@x.test", "--mail-rcpt", "b@x.test", "-T", msg, "-u", "user:secret"}
	}
	curlVer := []string{"curl", "--version"}
	pyVer := []string{"python3", "--version"}
	// fetchmail warns on stderr when run as root.
	fetchmailVer := []string{"sh", "-c", "fetchmail --version 2>/dev/null"}
	curlLDAP := func(tlsFlag string) []string {
		return []string{"curl", "-sS", "--max-time", "5", tlsFlag, "--cacert", "{ca}", "ldap://{addr}/dc=test?cn?sub?(uid=user)",
			"-u", "cn=user,dc=test:secret"}
	}
	// --no-defaults: no option files of the machine's own.
	mariadb := func(tls ...string) []string {
		return append([]string{"mariadb", "--no-defaults", "--protocol=TCP", "-h", "{host}", "-P", "{port}", "-u", "user", "-psecret",
			"--connect-timeout=5", "-e", "select 1"}, tls...)
	}
	ldapVer := []string{"sh", "-c", "dpkg-query -W -f 'ldap-utils ${Version}' ldap-utils"}
	psqlVer := []string{"psql", "--version"}
	mariadbVer := []string{"mariadb", "--version"}
	certAll := []string{"cert-expired", "cert-self-signed", "cert-unknown-ca", "cert-wrong-name"}
	ldapAll := append([]string{"control", "inject-after-go-ahead"}, certAll...)
	opportunistic := []string{"strip-capability", "strip-mechanisms", "legacy-downgrade", "spoof-error-escape",
		"refuse-221", "refuse-354", "refuse-454", "refuse-500", "refuse-501", "refuse-502"}
	return []realClient{
		{name: "curl --ssl-reqd", proto: starttls.SMTP, bin: "curl", version: curlVer,
			command: curlSMTP("--ssl-reqd")},
		{name: "curl --ssl (opportunistic)", proto: starttls.SMTP, bin: "curl", version: curlVer,
			command:  curlSMTP("--ssl"),
			wantFail: opportunistic},
		{name: "curl --ssl-reqd", proto: starttls.IMAP, bin: "curl", version: curlVer,
			command:  []string{"curl", "-sS", "--max-time", "5", "--ssl-reqd", "--cacert", "{ca}", "imap://{addr}/INBOX", "-u", "user:secret"},
			wantFail: []string{"early-tagged-ok"}},
		{name: "curl --ssl (opportunistic)", proto: starttls.IMAP, bin: "curl", version: curlVer,
			command:  []string{"curl", "-sS", "--max-time", "5", "--ssl", "--cacert", "{ca}", "imap://{addr}/INBOX", "-u", "user:secret"},
			wantFail: []string{"early-tagged-ok", "preauth", "strip-capability", "strip-mechanisms"}},
		{name: "curl --ssl-reqd", proto: starttls.POP3, bin: "curl", version: curlVer,
			command: []string{"curl", "-sS", "--max-time", "5", "--ssl-reqd", "--cacert", "{ca}", "pop3://{addr}/", "-u", "user:secret"}},
		{name: "curl --ssl-reqd", proto: starttls.FTP, bin: "curl", version: curlVer,
			command: []string{"curl", "-sS", "--max-time", "5", "--ssl-reqd", "--cacert", "{ca}", "ftp://{addr}/", "-u", "user:secret"}},
		{name: "swaks --tls --tls-verify", proto: starttls.SMTP, bin: "swaks", version: []string{"swaks", "--version"},
			command: []string{"swaks", "--server", "{host}:{port}", "--tls", "--tls-verify", "--tls-ca-path", "{ca}", "--tls-sni", "localhost",
				"--from", "a@x.test", "--to", "b@x.test", "--auth", "PLAIN", "--auth-user", "user", "--auth-password", "secret", "--timeout", "5"},
			wantFail: []string{"cert-wrong-name", "inject-after-go-ahead", "spoof-error-escape"}},
		{name: "python3 smtplib starttls()", proto: starttls.SMTP, bin: "python3", version: pyVer,
			command: []string{"python3", script("smtp.py", pySMTP), "{host}", "{port}", "{ca}"}},
		{name: "python3 imaplib starttls()", proto: starttls.IMAP, bin: "python3", version: pyVer,
			command:  []string{"python3", script("imap.py", pyIMAP), "{host}", "{port}", "{ca}"},
			wantFail: []string{"early-tagged-ok"}},
		{name: "python3 poplib stls()", proto: starttls.POP3, bin: "python3", version: pyVer,
			command:  []string{"python3", script("pop3.py", pyPOP3), "{host}", "{port}", "{ca}"},
			wantFail: []string{"tamper-capabilities"}},
		// msmtp checks the name against --host: localhost is in the certificate.
		{name: "msmtp --tls=on --tls-starttls=on", proto: starttls.SMTP, bin: "msmtp", version: []string{"msmtp", "--version"},
			command: []string{"sh", script("msmtp.sh", msmtpSh), "localhost", "{port}", "{ca}", msg}},
		// fetchmail matches the DNS names of the certificate only, not its IP addresses.
		{name: "fetchmail --sslproto auto --sslcertck", proto: starttls.IMAP, bin: "fetchmail", version: fetchmailVer,
			command:  []string{"sh", script("fetchmail.sh", fetchmailSh), "IMAP", "localhost", "{port}", "{ca}"},
			wantFail: []string{"early-tagged-ok", "spoof-alert-escape"}},
		{name: "fetchmail --sslproto auto --sslcertck", proto: starttls.POP3, bin: "fetchmail", version: fetchmailVer,
			command:  []string{"sh", script("fetchmail.sh", fetchmailSh), "POP3", "localhost", "{port}", "{ca}"},
			wantFail: []string{"spoof-error-escape"}},
		// neomutt hangs (until killed) on the injection scenarios: its
		// pre-STARTTLS flush reads the socket for bytes it already buffered.
		{name: "neomutt -n (batch send, ssl_force_tls)", proto: starttls.SMTP, bin: "neomutt", version: []string{"neomutt", "-v"},
			command:  []string{"sh", script("neomutt.sh", neomuttSh), "localhost", "{port}", "{ca}", msg},
			timeout:  4 * time.Second,
			wantFail: []string{"spoof-error-escape"}},
		// sieve-connect waits for a greeting after a malformed one until killed.
		{name: "sieve-connect --list", proto: starttls.Sieve, bin: "sieve-connect", version: []string{"sh", "-c", "sieve-connect --version 2>&1"},
			command: []string{"sh", script("sieve-connect.sh", sieveConnectSh), "localhost", "{port}", "{ca}"},
			timeout: 4 * time.Second},
		{name: "curl --ssl (opportunistic)", proto: starttls.POP3, bin: "curl", version: curlVer,
			command:  []string{"curl", "-sS", "--max-time", "5", "--ssl", "--cacert", "{ca}", "pop3://{addr}/", "-u", "user:secret"},
			wantFail: []string{"strip-mechanisms"}},
		{name: "curl --ssl (opportunistic)", proto: starttls.FTP, bin: "curl", version: curlVer,
			command:  []string{"curl", "-sS", "--max-time", "5", "--ssl", "--cacert", "{ca}", "ftp://{addr}/", "-u", "user:secret"},
			wantFail: []string{"refuse-500", "refuse-534", "strip-capability"}},
		// curl 7.88's LDAP backend ("LDAP local") sends the StartTLS
		// request, then binds and searches in plaintext after the success
		// answer, whatever --ssl-reqd says.
		{name: "curl --ssl-reqd", proto: starttls.LDAP, bin: "curl", version: curlVer, controlFails: true,
			command:  curlLDAP("--ssl-reqd"),
			wantFail: ldapAll},
		{name: "curl --ssl (opportunistic)", proto: starttls.LDAP, bin: "curl", version: curlVer, controlFails: true,
			command:  curlLDAP("--ssl"),
			wantFail: append([]string{"strip-capability", "refuse-unavailable"}, ldapAll...)},
		{name: "ldapsearch -ZZ (StartTLS required)", proto: starttls.LDAP, bin: "ldapsearch", version: ldapVer,
			command: []string{"sh", script("ldapsearch.sh", ldapsearchSh), "{addr}", "{ca}", "-ZZ"}},
		{name: "ldapsearch -Z (StartTLS tried)", proto: starttls.LDAP, bin: "ldapsearch", version: ldapVer,
			command:  []string{"sh", script("ldapsearch.sh", ldapsearchSh), "{addr}", "{ca}", "-Z"},
			wantFail: []string{"refuse-unavailable", "strip-capability"}},
		{name: "psql sslmode=verify-full", proto: starttls.Postgres, bin: "psql", version: psqlVer,
			command: []string{"sh", script("psql.sh", psqlSh), "{host}", "{port}", "verify-full", "{ca}"}},
		{name: "psql sslmode=require", proto: starttls.Postgres, bin: "psql", version: psqlVer,
			command:  []string{"sh", script("psql.sh", psqlSh), "{host}", "{port}", "require"},
			wantFail: certAll},
		{name: "psql sslmode=prefer", proto: starttls.Postgres, bin: "psql", version: psqlVer,
			command:  []string{"sh", script("psql.sh", psqlSh), "{host}", "{port}", "prefer"},
			wantFail: append([]string{"strip-capability"}, certAll...)},
		{name: "mariadb --ssl-verify-server-cert", proto: starttls.MySQL, bin: "mariadb", version: mariadbVer,
			command: mariadb("--ssl-verify-server-cert", "--ssl-ca={ca}")},
		{name: "mariadb --ssl-ca (no --ssl-verify-server-cert)", proto: starttls.MySQL, bin: "mariadb", version: mariadbVer,
			command:  mariadb("--ssl-ca={ca}"),
			wantFail: []string{"cert-wrong-name", "strip-capability"}},
		{name: "mariadb (defaults)", proto: starttls.MySQL, bin: "mariadb", version: mariadbVer,
			command:  mariadb(),
			wantFail: append([]string{"strip-capability"}, certAll...)},
		{name: "Go net/smtp (SendMail's logic)", proto: starttls.SMTP, client: goSendMail,
			wantFail: []string{"legacy-downgrade", "strip-capability", "strip-mechanisms"}},
		{name: "starttls-go (this module)", proto: starttls.SMTP, client: LibraryClient(starttls.SMTP)},
		{name: "starttls-go (this module)", proto: starttls.IMAP, client: LibraryClient(starttls.IMAP)},
		{name: "starttls-go (this module)", proto: starttls.POP3, client: LibraryClient(starttls.POP3)},
		{name: "starttls-go (this module)", proto: starttls.NNTP, client: LibraryClient(starttls.NNTP)},
		{name: "starttls-go (this module)", proto: starttls.Sieve, client: LibraryClient(starttls.Sieve)},
		{name: "starttls-go (this module)", proto: starttls.LDAP, client: LibraryClient(starttls.LDAP)},
		{name: "starttls-go (this module)", proto: starttls.Postgres, client: LibraryClient(starttls.Postgres)},
		{name: "starttls-go (this module)", proto: starttls.MySQL, client: LibraryClient(starttls.MySQL)},
		{name: "starttls-go (this module)", proto: starttls.XMPP, client: LibraryClient(starttls.XMPP)},
		{name: "starttls-go (this module)", proto: starttls.IRC, client: LibraryClient(starttls.IRC)},
		{name: "starttls-go (this module)", proto: starttls.HTTP, client: LibraryClient(starttls.HTTP)},
	}
}

// The compatibility table: each real client's verdicts are asserted as
// recorded, and our own client passes everything.
func TestRealClients(t *testing.T) {
	clients := realClients(t)
	docs := make([]clientDoc, len(clients))
	// Clients run two at a time: each scenario is mostly waiting.
	t.Run("clients", func(t *testing.T) {
		for i, rc := range clients {
			t.Run(string(rc.proto)+"/"+rc.name, func(t *testing.T) {
				t.Parallel()
				runRealClient(t, rc, &docs[i])
			})
		}
	})
	if *writeDocs != "" {
		head := "# Real STARTTLS clients against `starttls clienttest`\n\nGenerated by `go test ./clienttest -run TestRealClients -write-docs docs/clienttest.md` " +
			"on " + time.Now().UTC().Format("2006-01-02") + ". A `fail` is a leak or an accepted attack, with the evidence the scenario server saw.\n\n"
		var all strings.Builder
		all.WriteString(head)
		all.WriteString("| protocol | client | failed scenarios |\n|---|---|---|\n")
		for _, rc := range clients {
			f := "none"
			if len(rc.wantFail) > 0 {
				f = strings.Join(rc.wantFail, ", ")
			}
			if rc.controlFails {
				f += " (fails the honest server: the run does not count as a result)"
			}
			fmt.Fprintf(&all, "| %s | %s | %s |\n", rc.proto, rc.name, f)
		}
		all.WriteString("\n## Credentials and data sent in plaintext\n\n" +
			"Every failure where the client sent a secret or data where an attacker on the path reads it " +
			"(opportunistic clients do so by design once STARTTLS is stripped; the others should not).\n\n")
		for _, d := range docs {
			for _, l := range d.leaks {
				all.WriteString(l + "\n")
			}
		}
		all.WriteString("\n## Per client\n\n")
		for i := range docs {
			all.WriteString(docs[i].table.String())
		}
		if err := os.WriteFile(*writeDocs, []byte(all.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// clientDoc is one client's part of the generated page.
type clientDoc struct {
	table strings.Builder
	leaks []string // one Markdown list item per plaintext leak
}

func runRealClient(t *testing.T, rc realClient, docs *clientDoc) {
	if rc.bin != "" {
		peer.Require(t, rc.bin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	timeout := 10 * time.Second
	if rc.timeout > 0 {
		timeout = rc.timeout
	}
	r, err := Run(ctx, Options{Protocol: rc.proto, Command: rc.command, Client: rc.client, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Counts && !rc.controlFails {
		t.Fatalf("control scenario failed: %s\n%s", r.Results[0].Evidence, r.Results[0].ClientOut)
	}
	if r.Counts && rc.controlFails {
		t.Errorf("control scenario now passes (recorded as failing): %s", r.Results[0].Evidence)
	}
	got := r.Failed()
	sort.Strings(got)
	want := slices.Clone(rc.wantFail)
	sort.Strings(want)
	if !slices.Equal(got, want) {
		t.Errorf("failed scenarios changed:\n got  %q\n want %q\n%s", got, want, results(r))
	}
	for _, res := range r.Results {
		if res.Verdict == Inconclusive {
			t.Errorf("%s inconclusive: %s", res.Scenario.Name, res.Evidence)
		}
	}
	if *writeDocs != "" {
		ver := "in-process (Go " + strings.TrimPrefix(runtimeVersion(), "go") + ")"
		if len(rc.version) > 0 {
			out, _ := exec.Command(rc.version[0], rc.version[1:]...).CombinedOutput()
			ver = strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
		}
		r.Client, r.Version = rc.name, ver
		r.Markdown(&docs.table)
		for _, res := range r.Results {
			if res.Verdict == Fail && strings.Contains(res.Evidence, "\" in plaintext") {
				docs.leaks = append(docs.leaks, fmt.Sprintf("- %s, `%s`, %s: %s", rc.proto, rc.name, res.Scenario.Name,
					strings.ReplaceAll(res.Evidence, "|", "\\|")))
			}
		}
	}
}

func runtimeVersion() string { return runtime.Version() }
