package peer

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// CUPS is a running private cupsd: an HTTP/IPP server that upgrades to TLS
// on request (RFC 2817: OPTIONS with "Upgrade: TLS/1.0" → 101) and also
// accepts TLS from the first byte on the same port (it looks at the first
// byte of each connection).
type CUPS struct {
	Addr string // 127.0.0.1:port
	*PKI
	// ServerName is the name cupsd knows itself by, whose certificate it
	// serves: localhost.
	ServerName string
	// IndexMarker is in the body of GET / (DocumentRoot/index.html), so that
	// a test can tell that response from any other.
	IndexMarker string
	Version     string
	Dir         string
}

// CUPSOptions tune the instance.
type CUPSOptions struct {
	// Conf lines are appended to cupsd.conf.
	Conf []string
}

// StartCUPS starts cupsd in the foreground on a free loopback port with a
// configuration, spool, logs and TLS keychain of its own in a temporary
// directory.
func StartCUPS(t testing.TB, o CUPSOptions) *CUPS {
	t.Helper()
	bins := Require(t, "cupsd")
	dir := tempDir(t, "cups")
	for _, d := range []string{"ssl", "state", "cache", "spool", "spool/tmp", "log", "doc"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	pki := newPKI(t, dir) // localhost and 127.0.0.1
	c := &CUPS{PKI: pki, Dir: dir, ServerName: "localhost", Addr: addr(FreePort(t)),
		IndexMarker: "starttls-cups-index-" + filepath.Base(dir)}
	if v, err := run(t, 10*time.Second, "dpkg-query", "-W", "-f=${Version}", "cups-daemon"); err == nil {
		c.Version = v
	}
	// CUPS (GnuTLS build) looks for ServerKeychain/<name>.crt and .key, the
	// name being what the client's address resolves to (localhost here) or
	// else ServerName; with CreateSelfSignedCerts off it never makes its own.
	for src, dst := range map[string]string{pki.CertFile: "localhost.crt", pki.KeyFile: "localhost.key"} {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, "ssl", dst), string(b), 0o600)
	}
	writeFile(t, filepath.Join(dir, "doc", "index.html"),
		"<!DOCTYPE html>\n<html><head><title>CUPS test</title></head><body>"+c.IndexMarker+"</body></html>\n", 0o644)

	group := "root"
	if g, err := user.LookupGroupId(strconv.Itoa(os.Getgid())); err == nil {
		group = g.Name
	}
	files := []string{
		"ServerRoot " + dir,
		"StateDir " + filepath.Join(dir, "state"),
		"CacheDir " + filepath.Join(dir, "cache"),
		"RequestRoot " + filepath.Join(dir, "spool"),
		"TempDir " + filepath.Join(dir, "spool", "tmp"),
		"DocumentRoot " + filepath.Join(dir, "doc"),
		"AccessLog " + filepath.Join(dir, "log", "access_log"),
		"ErrorLog " + filepath.Join(dir, "log", "error_log"),
		"PageLog " + filepath.Join(dir, "log", "page_log"),
		"ServerKeychain " + filepath.Join(dir, "ssl"),
		"CreateSelfSignedCerts no",
		// The administrators' group must exist; the test's own will do
		// (cupsd also runs unprivileged, then as the test's user).
		"SystemGroup " + group,
	}
	conf := []string{
		"LogLevel info",
		"MaxLogSize 0",
		"Listen " + c.Addr,
		"ServerName " + c.ServerName,
		"Browsing No",
		"BrowseLocalProtocols none",
		"WebInterface Yes",
		// Encryption when the client asks (Upgrade or a TLS first byte);
		// cupsd never insists on loopback, whatever the setting.
		"DefaultEncryption IfRequested",
		"SSLOptions MinTLS1.2",
		"<Location />\n  Order allow,deny\n  Allow 127.0.0.1\n</Location>",
	}
	conf = append(conf, o.Conf...)
	filesConf := filepath.Join(dir, "cups-files.conf")
	cupsdConf := filepath.Join(dir, "cupsd.conf")
	writeFile(t, filesConf, strings.Join(files, "\n")+"\n", 0o644)
	writeFile(t, cupsdConf, strings.Join(conf, "\n")+"\n", 0o644)
	if out, err := run(t, 10*time.Second, bins["cupsd"], "-t", "-c", cupsdConf, "-s", filesConf); err != nil {
		t.Fatalf("cupsd -t: %v\n%s", err, out)
	}

	// startDaemon stops it with SIGINT, which cupsd does not handle: it
	// dies at once, with nothing worth keeping.
	startDaemon(t, dir, "cupsd", bins["cupsd"], "-f", "-c", cupsdConf, "-s", filesConf).ready(t, c.Addr)
	return c
}

// Log returns cupsd's error log.
func (c *CUPS) Log() string { return tail(filepath.Join(c.Dir, "log", "error_log")) }
