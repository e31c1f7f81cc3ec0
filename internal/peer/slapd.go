package peer

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Slapd is a running private OpenLDAP instance: its own cn=config in a
// temporary directory, an mdb database for dc=test, and listeners for
// ldap:// (StartTLS) and ldaps:// on loopback.
type Slapd struct {
	LDAPAddr  string
	LDAPSAddr string // "" when started without TLS
	*PKI
	Version string // "2.5.13+dfsg-5"
	Dir     string
	// Suffix, RootDN and RootPW are the database's; the RootDN can bind
	// (after TLS when the instance requires it).
	Suffix, RootDN, RootPW string
}

// SlapdOptions tune the instance.
type SlapdOptions struct {
	// NoTLS leaves TLS unconfigured: no ldaps listener, and slapd does not
	// know StartTLS (it answers protocolError "unsupported extended operation").
	NoTLS bool
	// Global lines are added to the cn=config entry, e.g.
	// "olcSecurity: tls=1" to require TLS for everything but StartTLS.
	Global []string
}

// slapdModulePath is where Debian installs the backends.
const slapdModulePath = "/usr/lib/ldap"

// StartSlapd starts slapd in the foreground on two free loopback ports.
// Under root the daemon runs as the openldap user, as Debian runs it.
func StartSlapd(t testing.TB, o SlapdOptions) *Slapd {
	t.Helper()
	bins := Require(t, "slapd", "slapadd")
	if _, err := os.Stat(filepath.Join(slapdModulePath, "back_mdb.so")); err != nil {
		t.Fatalf("slapd without its mdb backend module: %v", err)
	}
	// Not t.TempDir: its 0700 parents would lock out the openldap user.
	dir := tempDir(t, "slapd")
	for _, d := range []string{"slapd.d", "db", "run"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sd := &Slapd{Dir: dir, LDAPAddr: addr(FreePort(t)), Suffix: "dc=test", RootDN: "cn=admin,dc=test", RootPW: "secret"}
	if !o.NoTLS {
		sd.PKI = newPKI(t, dir, "ldap.test")
		sd.LDAPSAddr = addr(FreePort(t))
	}
	out, _ := run(t, 10*time.Second, bins["slapd"], "-VV")
	if m := regexp.MustCompile(`slapd ([0-9][^ ]*)`).FindStringSubmatch(out); m != nil {
		sd.Version = m[1]
	} else {
		sd.Version = out
	}

	global := []string{
		"dn: cn=config",
		"objectClass: olcGlobal",
		"cn: config",
		"olcPidFile: " + filepath.Join(dir, "run", "slapd.pid"),
		"olcArgsFile: " + filepath.Join(dir, "run", "slapd.args"),
	}
	if !o.NoTLS {
		global = append(global,
			"olcTLSCACertificateFile: "+sd.CAFile,
			"olcTLSCertificateFile: "+sd.CertFile,
			"olcTLSCertificateKeyFile: "+sd.KeyFile,
			"olcTLSProtocolMin: 3.3", // TLS 1.2
		)
	}
	global = append(global, o.Global...)
	ldif := strings.Join(global, "\n") + "\n\n" + strings.Join([]string{
		"dn: cn=module{0},cn=config",
		"objectClass: olcModuleList",
		"cn: module{0}",
		"olcModulePath: " + slapdModulePath,
		"olcModuleLoad: back_mdb",
		"",
		"dn: cn=schema,cn=config",
		"objectClass: olcSchemaConfig",
		"cn: schema",
		"",
		"include: file:///etc/ldap/schema/core.ldif",
		"",
		"dn: olcDatabase={-1}frontend,cn=config",
		"objectClass: olcDatabaseConfig",
		"objectClass: olcFrontendConfig",
		"olcDatabase: {-1}frontend",
		"olcAccess: {0}to dn.base=\"\" by * read",
		"olcAccess: {1}to * by * read",
		"",
		"dn: olcDatabase={0}config,cn=config",
		"objectClass: olcDatabaseConfig",
		"olcDatabase: {0}config",
		"olcAccess: {0}to * by * none",
		"",
		"dn: olcDatabase={1}mdb,cn=config",
		"objectClass: olcDatabaseConfig",
		"objectClass: olcMdbConfig",
		"olcDatabase: {1}mdb",
		"olcDbDirectory: " + filepath.Join(dir, "db"),
		"olcDbMaxSize: 16777216",
		"olcSuffix: " + sd.Suffix,
		"olcRootDN: " + sd.RootDN,
		"olcRootPW: " + sd.RootPW,
		"",
	}, "\n")
	configLDIF := filepath.Join(dir, "config.ldif")
	writeFile(t, configLDIF, ldif, 0o644)
	slapdD := filepath.Join(dir, "slapd.d")
	if out, err := run(t, 30*time.Second, bins["slapadd"], "-n0", "-F", slapdD, "-l", configLDIF); err != nil {
		t.Fatalf("slapadd cn=config: %v\n%s\n%s", err, out, ldif)
	}
	base := filepath.Join(dir, "base.ldif")
	writeFile(t, base, "dn: "+sd.Suffix+"\nobjectClass: dcObject\nobjectClass: organization\no: test\ndc: test\n", 0o644)
	if out, err := run(t, 30*time.Second, bins["slapadd"], "-n1", "-F", slapdD, "-l", base); err != nil {
		t.Fatalf("slapadd %s: %v\n%s", sd.Suffix, err, out)
	}

	urls := "ldap://" + sd.LDAPAddr + "/"
	if sd.LDAPSAddr != "" {
		urls += " ldaps://" + sd.LDAPSAddr + "/"
	}
	// -d keeps slapd in the foreground; 256 (stats) logs connections and
	// operations to stderr, which goes to slapd.log.
	args := []string{"-d", "256", "-h", urls, "-F", slapdD}
	if os.Geteuid() == 0 {
		if u, err := user.Lookup("openldap"); err == nil {
			uid, _ := strconv.Atoi(u.Uid)
			gid, _ := strconv.Atoi(u.Gid)
			if err := slapdChown(dir, uid, gid); err != nil {
				t.Fatal(err)
			}
			args = append(args, "-u", "openldap", "-g", "openldap")
		}
	}
	d := startDaemon(t, dir, "slapd", bins["slapd"], args...)
	addrs := []string{sd.LDAPAddr}
	if sd.LDAPSAddr != "" {
		addrs = append(addrs, sd.LDAPSAddr)
	}
	d.ready(t, addrs...)
	return sd
}

// Log returns the instance's log (stats level).
func (s *Slapd) Log() string { return tail(filepath.Join(s.Dir, "slapd.log")) }

func slapdChown(dir string, uid, gid int) error {
	return filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := os.Chown(p, uid, gid); err != nil {
			return fmt.Errorf("chown %s: %w", p, err)
		}
		return nil
	})
}
