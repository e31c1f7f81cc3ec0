package peer

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// MariaDB is a running private MariaDB (or MySQL) server with TLS.
type MariaDB struct {
	Addr string // 127.0.0.1:port
	*PKI
	Version string
	Dir     string
	Socket  string
	User    string // root, no password, over TCP from 127.0.0.1
}

// MariaDBOptions tune the instance.
type MariaDBOptions struct {
	// Args are extra server options, e.g. "--require-secure-transport=ON".
	Args []string
}

// firstOf returns the first binary found of names; under CI a missing one
// fails the test, otherwise it skips.
func firstOf(t testing.TB, names ...string) string {
	t.Helper()
	for _, n := range names {
		if p, ok := Look(n); ok {
			return p
		}
	}
	return Require(t, names[0])[names[0]]
}

// StartMariaDB creates a data directory with mariadb-install-db (or
// mysql_install_db) and runs the server in the foreground on a free
// loopback port with a certificate from a fresh CA.
func StartMariaDB(t testing.TB, o MariaDBOptions) *MariaDB {
	t.Helper()
	server := firstOf(t, "mariadbd", "mysqld")
	install := firstOf(t, "mariadb-install-db", "mysql_install_db")
	dir, err := os.MkdirTemp("", "starttls-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	pki := newPKI(t, dir, "db.test")
	port := FreePort(t)
	m := &MariaDB{PKI: pki, Dir: dir, User: "root", Addr: addr(port), Socket: filepath.Join(dir, "mysqld.sock")}
	m.Version, _ = run(t, 10*time.Second, server, "--version")

	var asUser []string
	if os.Geteuid() == 0 {
		asUser = []string{"--user=root"}
	}
	args := append([]string{"--no-defaults", "--datadir=" + data, "--auth-root-authentication-method=normal",
		"--skip-test-db"}, asUser...)
	if out, err := run(t, 2*time.Minute, install, args...); err != nil {
		t.Fatalf("%s: %v\n%s", install, err, out)
	}

	logFile := filepath.Join(dir, "error.log")
	args = append([]string{"--no-defaults",
		"--datadir=" + data,
		"--socket=" + m.Socket,
		"--pid-file=" + filepath.Join(dir, "mysqld.pid"),
		"--port=" + strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--ssl-cert=" + pki.CertFile,
		"--ssl-key=" + pki.KeyFile,
		"--ssl-ca=" + pki.CAFile,
		"--log-error=" + logFile,
		"--skip-log-bin",
		"--innodb-buffer-pool-size=16M",
		"--innodb-log-file-size=8M",
	}, asUser...)
	args = append(args, o.Args...)
	// SIGTERM is mariadbd's clean shutdown.
	d := startDaemonStop(t, dir, "stdout", syscall.SIGTERM, server, args...)
	d.log = logFile
	d.ready(t, m.Addr)
	return m
}

// Log returns the instance's error log.
func (m *MariaDB) Log() string { return tail(filepath.Join(m.Dir, "error.log")) }
