package peer

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Prosody is a running private Prosody (XMPP) instance.
type Prosody struct {
	// C2SAddr and S2SAddr speak STARTTLS (RFC 6120); the Direct addresses
	// are implicit TLS (XEP-0368).
	C2SAddr, C2SDirectAddr, S2SAddr, S2SDirectAddr string
	*PKI
	// Domains are the virtual hosts, each covered by the certificate.
	Domains []string
	Version string
	Dir     string
	cfg     string
}

// ProsodyOptions tune the instance.
type ProsodyOptions struct {
	// Optional leaves c2s and s2s encryption optional (the default requires it).
	Optional bool
	// Conf lines are appended to the global section of prosody.cfg.lua.
	Conf []string
	// DialOut prepares Prosody to dial a test's s2s server: it verifies
	// the certificates of the servers it dials against the instance's own
	// CA (a test server with a leaf from PKI.CA is trusted), and it runs in
	// a mount namespace of its own whose /etc/resolv.conf names 127.0.0.1,
	// so that the SRV lookups of an outgoing connection stay on loopback.
	// Needs root (unshare -m).
	DialOut bool
}

// StartProsody starts Prosody in the foreground on four free loopback
// ports, serving the virtual hosts mail.test and localhost with a
// certificate from a generated CA.
func StartProsody(t testing.TB, o ProsodyOptions) *Prosody {
	t.Helper()
	bins := Require(t, "prosody")
	dir, err := os.MkdirTemp("", "starttls-prosody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o750); err != nil {
		t.Fatal(err)
	}
	pki := newPKI(t, dir, "mail.test")
	version := ""
	if b, err := os.ReadFile("/usr/lib/prosody/prosody.version"); err == nil {
		version = strings.TrimSpace(string(b))
	}
	// A port from FreePort may be taken by someone else before Prosody binds
	// it (other test processes start daemons too): the log says which ports
	// Prosody itself bound, and a lost race is retried on fresh ports.
	for attempt := 1; ; attempt++ {
		p := &Prosody{PKI: pki, Dir: dir, Domains: []string{"mail.test", "localhost"}, Version: version,
			C2SAddr: addr(FreePort(t)), C2SDirectAddr: addr(FreePort(t)),
			S2SAddr: addr(FreePort(t)), S2SDirectAddr: addr(FreePort(t))}
		stop, err := p.start(t, bins["prosody"], o)
		if err == nil {
			t.Cleanup(stop)
			return p
		}
		stop()
		if attempt == 3 {
			t.Fatalf("prosody: %v\n%s", err, p.Log())
		}
		t.Logf("prosody: %v; retrying on other ports", err)
	}
}

// start runs one instance and waits until it listens on its four ports.
func (p *Prosody) start(t testing.TB, bin string, o ProsodyOptions) (stop func(), err error) {
	t.Helper()
	dir := p.Dir
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	q := func(s string) string { return fmt.Sprintf("%q", s) } // a Lua string literal
	required := "true"
	if o.Optional {
		required = "false"
	}
	logFile := filepath.Join(dir, "prosody.log")
	_ = os.Remove(logFile)
	cafile := ""
	if o.DialOut {
		cafile = ", cafile = " + q(p.CAFile)
	}
	p.cfg = filepath.Join(dir, "prosody.cfg.lua")
	conf := []string{
		// The test runs it as whatever user it is; as root it must be told
		// not to switch to the prosody user (mod_posix refuses otherwise).
		"run_as_root = true",
		"pidfile = " + q(filepath.Join(dir, "prosody.pid")),
		"data_path = " + q(filepath.Join(dir, "data")),
		"interfaces = { \"127.0.0.1\" }",
		"local_interfaces = { \"127.0.0.1\" }",
		"c2s_ports = { " + port(p.C2SAddr) + " }",
		"c2s_direct_tls_ports = { " + port(p.C2SDirectAddr) + " }",
		"s2s_ports = { " + port(p.S2SAddr) + " }",
		"s2s_direct_tls_ports = { " + port(p.S2SDirectAddr) + " }",
		"legacy_ssl_ports = { }",
		"modules_enabled = { \"tls\", \"saslauth\", \"dialback\", \"disco\", \"ping\", \"posix\" }",
		"modules_disabled = { \"offline\" }",
		"c2s_require_encryption = " + required,
		"s2s_require_encryption = " + required,
		"s2s_secure_auth = false",
		"allow_registration = false",
		"authentication = \"internal_hashed\"",
		"storage = \"internal\"",
		// No certificate discovery: only the generated one below.
		"certificates = " + q(filepath.Join(dir, "no-such-certs")),
		"ssl = { certificate = " + q(p.CertFile) + ", key = " + q(p.KeyFile) + ", protocol = \"tlsv1_2+\"" + cafile + " }",
		"log = { { levels = { min = \"debug\" }, to = \"file\", filename = " + q(logFile) + " } }",
	}
	conf = append(conf, o.Conf...)
	for _, d := range p.Domains {
		conf = append(conf, "VirtualHost "+q(d))
	}
	cfg := p.cfg
	writeFile(t, cfg, strings.Join(conf, "\n")+"\n", 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, bin, "-F", "--config", cfg)
	if o.DialOut {
		if os.Geteuid() != 0 {
			cancel()
			Unavailable(t, "Prosody dialing out needs root (unshare -m for a loopback-only resolv.conf)")
		}
		resolv := filepath.Join(dir, "resolv.conf")
		writeFile(t, resolv, "nameserver 127.0.0.1\n", 0o644)
		// unshare execs the shell, which execs Prosody: one process, so
		// the signals below reach Prosody itself.
		cmd = exec.CommandContext(ctx, "unshare", "-m", "sh", "-c", `mount --bind "$1" /etc/resolv.conf && exec "$2" -F --config "$3"`,
			"sh", resolv, bin, cfg)
	}
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		cancel()
		out.Close()
		t.Fatalf("prosody: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		// SIGTERM is Prosody's clean shutdown; the context kills it if not.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cancel()
			<-exited
		}
		cancel()
		out.Close()
	}
	want := map[string]string{"c2s": p.C2SAddr, "c2s_direct_tls": p.C2SDirectAddr, "s2s": p.S2SAddr, "s2s_direct_tls": p.S2SDirectAddr}
	deadline := time.Now().Add(15 * time.Second)
	for {
		log, _ := os.ReadFile(logFile)
		missing := ""
		for svc, a := range want {
			if !strings.Contains(string(log), "Added listening service "+svc+" to [127.0.0.1]:"+port(a)+"\n") {
				missing = svc + " on " + a
			}
		}
		switch {
		case missing == "":
			waitPorts(t, logFile, p.C2SAddr, p.C2SDirectAddr, p.S2SAddr, p.S2SDirectAddr)
			return stop, nil
		case strings.Contains(string(log), "Failed to open server port"):
			return stop, fmt.Errorf("a port was taken (%s)", missing)
		case time.Now().After(deadline):
			return stop, fmt.Errorf("not listening on %s within 15 s", missing)
		}
		select {
		case <-exited:
			return stop, fmt.Errorf("exited before listening on %s", missing)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Log returns the end of the instance's log.
func (p *Prosody) Log() string {
	return tail(filepath.Join(p.Dir, "prosody.log")) + tail(filepath.Join(p.Dir, "stdout.log"))
}

// Register creates an account user@domain with the password (prosodyctl
// against the instance's configuration).
func (p *Prosody) Register(t testing.TB, user, domain, password string) {
	t.Helper()
	bins := Require(t, "prosodyctl")
	if out, err := run(t, 30*time.Second, bins["prosodyctl"], "--config", p.cfg, "register", user, domain, password); err != nil {
		t.Fatalf("prosodyctl register %s@%s: %v\n%s", user, domain, err, out)
	}
}
