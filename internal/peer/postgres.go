package peer

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Postgres is a running private PostgreSQL instance that requires TLS for
// TCP connections (pg_hba: hostssl trust, hostnossl reject).
type Postgres struct {
	Addr string // 127.0.0.1:port
	*PKI
	Version string
	Dir     string
	User    string // a superuser that logs in without a password (over TLS)
}

// PostgresOptions tune the instance.
type PostgresOptions struct {
	// Conf are extra "name=value" settings passed with -c.
	Conf []string
	// AllowPlaintext accepts TCP sessions without TLS too.
	AllowPlaintext bool
}

// postgresBin finds the directory of the newest installed server
// (Debian keeps it out of PATH, under /usr/lib/postgresql/N/bin).
func postgresBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	var ok []string
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			ok = append(ok, d)
		}
	}
	sort.Slice(ok, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(ok[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(ok[j])))
		return vi < vj
	})
	if len(ok) > 0 {
		return ok[len(ok)-1]
	}
	// Elsewhere: PATH (fails under CI, skips otherwise).
	p := Require(t, "initdb", "postgres")
	return filepath.Dir(p["initdb"])
}

// StartPostgres initialises a cluster in a temporary directory and runs
// postgres in the foreground on a free loopback port with ssl=on and a
// certificate from a fresh CA. As root it runs as the postgres OS user
// (PostgreSQL refuses to run as root); otherwise as the current user.
func StartPostgres(t testing.TB, o PostgresOptions) *Postgres {
	t.Helper()
	bin := postgresBin(t)
	var asUser []string // command prefix
	uid, gid := -1, -1
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("running PostgreSQL as root needs the postgres user: %v", err)
		}
		runuser := Require(t, "runuser")["runuser"]
		asUser = []string{runuser, "-u", "postgres", "--"}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	dir, err := os.MkdirTemp("", "starttls-postgres-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	_ = os.Chmod(dir, 0o755)
	data, sock := filepath.Join(dir, "data"), filepath.Join(dir, "run")
	for _, d := range []string{data, sock} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	pki := newPKI(t, dir, "db.test")
	// The key must belong to the server's user and be private to it.
	for _, f := range []string{data, sock, pki.KeyFile} {
		if err := os.Chown(f, uid, gid); err != nil && uid >= 0 {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(pki.KeyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Postgres{PKI: pki, Dir: dir, User: "postgres", Addr: addr(FreePort(t))}
	p.Version, _ = run(t, 10*time.Second, filepath.Join(bin, "postgres"), "--version")

	initdb := append(append([]string{}, asUser...), filepath.Join(bin, "initdb"),
		"-D", data, "-U", p.User, "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
	if out, err := run(t, 2*time.Minute, initdb[0], initdb[1:]...); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	hba := "local all all trust\nhostssl all all 127.0.0.1/32 trust\n"
	if o.AllowPlaintext {
		hba += "hostnossl all all 127.0.0.1/32 trust\n"
	} else {
		hba += "hostnossl all all 127.0.0.1/32 reject\n"
	}
	writeFile(t, filepath.Join(data, "pg_hba.conf"), hba, 0o600)
	_ = os.Chown(filepath.Join(data, "pg_hba.conf"), uid, gid)

	_, port, _ := strings.Cut(p.Addr, ":")
	args := append(append([]string{}, asUser...), filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+port,
		"-c", "unix_socket_directories="+sock,
		"-c", "ssl=on",
		"-c", "ssl_cert_file="+pki.CertFile,
		"-c", "ssl_key_file="+pki.KeyFile,
		"-c", "ssl_ca_file="+pki.CAFile,
		"-c", "ssl_min_protocol_version=TLSv1.2",
		"-c", "fsync=off",
		"-c", "logging_collector=off",
		"-c", "log_connections=on",
	)
	for _, c := range o.Conf {
		args = append(args, "-c", c)
	}
	logFile := filepath.Join(dir, "postgres.log")
	out, err := os.Create(logFile)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		// runuser does not pass signals on: stop the postmaster by the PID it
		// wrote (SIGINT is PostgreSQL's fast shutdown), then runuser ends.
		if pid := postmasterPID(data); pid > 0 {
			if pr, err := os.FindProcess(pid); err == nil {
				_ = pr.Signal(os.Interrupt)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					_ = pr.Kill()
				}
			}
		}
		cancel()
		<-done
		out.Close()
	})
	select {
	case <-done:
		t.Fatalf("postgres exited at start:\n%s", tail(logFile))
	case <-time.After(100 * time.Millisecond):
	}
	waitPorts(t, logFile, p.Addr)
	// The port opens before recovery ends ("the database system is
	// starting up"); the log says when connections are accepted.
	waitLog(t, logFile, "ready to accept connections")
	return p
}

// postmasterPID reads the server's PID from postmaster.pid (0 if none).
func postmasterPID(data string) int {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0
	}
	first, _, _ := strings.Cut(string(b), "\n")
	n, _ := strconv.Atoi(strings.TrimSpace(first))
	return n
}

// Log returns the instance's log.
func (p *Postgres) Log() string { return tail(filepath.Join(p.Dir, "postgres.log")) }

// String names the instance in test output.
func (p *Postgres) String() string { return fmt.Sprintf("%s at %s", p.Version, p.Addr) }

// URL is the connection URL of database db on p as the project's stores
// take it: as p.User, over TLS verified against p's CA.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://%s@%s/%s?sslmode=verify-full&sslrootcert=%s", p.User, p.Addr, db, p.CAFile)
}

// CreateDatabases creates the databases dbs on p, failing t if one cannot
// be. It talks through database/sql's "pgx" driver, which peer does not
// import: the test's binary registers it (every PostgreSQL store does).
func (p *Postgres) CreateDatabases(t testing.TB, dbs ...string) {
	t.Helper()
	admin, err := sql.Open("pgx", p.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, db := range dbs {
		if _, err := admin.Exec("CREATE DATABASE " + db); err != nil {
			t.Fatal(err)
		}
	}
}
