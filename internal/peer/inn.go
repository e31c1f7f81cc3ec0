package peer

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// INN is a private INN reader daemon (nnrpd) with STARTTLS.
type INN struct {
	Addr string
	*PKI
	Version string
	Dir     string
	innconf string
	nnrpd   string
}

// StartINN runs nnrpd in standalone daemon mode on a free loopback port,
// with its own inn.conf (INNCONF) pointing every path into a temporary
// directory, an empty active file and an initialised overview.
func StartINN(t testing.TB) *INN {
	t.Helper()
	bins := Require(t, "nnrpd", "makedbz", "makehistory")
	if os.Geteuid() != 0 {
		Unavailable(t, "a private nnrpd instance needs root (it switches to the news user)")
	}
	news, err := user.Lookup("news")
	if err != nil {
		t.Fatalf("news user: %v", err)
	}
	uid, _ := strconv.Atoi(news.Uid)
	gid, _ := strconv.Atoi(news.Gid)
	dir := tempDir(t, "inn")
	sub := func(p string) string { return filepath.Join(dir, p) }
	for _, d := range []string{"etc", "db", "run", "log", "tmp", "spool", "spool/overview", "spool/articles"} {
		if err := os.MkdirAll(sub(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pki := newPKI(t, dir, "mail.test")
	n := &INN{Addr: addr(FreePort(t)), PKI: pki, Dir: dir}
	n.Version, _ = run(t, 10*time.Second, "dpkg-query", "-W", "-f=${Version}", "inn2")
	// The packaged configuration (storage.conf, ...), then inn.conf with
	// every path moved into dir.
	etc, _ := filepath.Glob("/etc/news/*.conf")
	for _, f := range etc {
		if b, err := os.ReadFile(f); err == nil {
			writeFile(t, sub("etc/"+filepath.Base(f)), string(b), 0o644)
		}
	}
	base, err := os.ReadFile("/etc/news/inn.conf")
	if err != nil {
		t.Fatalf("inn.conf: %v", err)
	}
	conf := string(base)
	for key, val := range map[string]string{
		"pathetc": sub("etc"), "pathdb": sub("db"), "pathrun": sub("run"), "pathlog": sub("log"),
		"pathtmp": sub("tmp"), "pathspool": sub("spool"), "pathoverview": sub("spool/overview"),
		"patharticles": sub("spool/articles"), "ovmethod": "tradindexed", "domain": "test",
	} {
		re := regexp.MustCompile(`(?m)^#?` + key + `:.*$`)
		conf = re.ReplaceAllString(conf, "")
		conf += fmt.Sprintf("%s: %s\n", key, val)
	}
	conf += fmt.Sprintf("tlscertfile: %s\ntlskeyfile: %s\ntlscafile: %s\n", pki.CertFile, pki.KeyFile, pki.CAFile)
	innconf := sub("etc/inn.conf")
	writeFile(t, innconf, conf, 0o644)
	// Anyone may read; nobody may post or log in.
	writeFile(t, sub("etc/readers.conf"), "auth \"all\" {\n  hosts: \"*\"\n  default: \"<anyone>\"\n}\naccess \"all\" {\n  users: \"*\"\n  newsgroups: \"*\"\n  access: R\n}\n", 0o644)
	writeFile(t, sub("db/active"), "test.starttls 0000000000 0000000001 y\n", 0o644)
	writeFile(t, sub("db/newsgroups"), "test.starttls\tSTARTTLS tests.\n", 0o644)
	writeFile(t, sub("db/history"), "", 0o644)
	if err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(p, uid, gid)
	}); err != nil {
		t.Fatal(err)
	}
	// The history database and the overview must exist before nnrpd opens them.
	asNews := func(bin string, args ...string) {
		t.Helper()
		all := append([]string{"-u", "news", "--", "env", "INNCONF=" + innconf, bin}, args...)
		if out, err := run(t, 30*time.Second, "runuser", all...); err != nil {
			t.Fatalf("%s: %v\n%s", bin, err, out)
		}
	}
	asNews(bins["makedbz"], "-i", "-o")
	asNews(bins["makehistory"], "-O", "-x")
	port := n.Addr[len("127.0.0.1:"):]
	n.innconf, n.nnrpd = innconf, bins["nnrpd"]
	startDaemon(t, dir, "nnrpd", "env", "INNCONF="+innconf, bins["nnrpd"], "-D", "-f", "-b", "127.0.0.1", "-p", port).ready(t, n.Addr)
	return n
}

// StartNNTPS runs a second nnrpd of the same instance that starts TLS on
// connection (nnrpd -S, the nntps form of port 563) on a free loopback
// port and returns its address. It stops with the test.
func (n *INN) StartNNTPS(t testing.TB) string {
	t.Helper()
	a := addr(FreePort(t))
	startDaemon(t, n.Dir, "nnrpd-s", "env", "INNCONF="+n.innconf, n.nnrpd, "-D", "-f", "-S", "-b", "127.0.0.1", "-p", a[len("127.0.0.1:"):]).ready(t, a)
	return a
}
