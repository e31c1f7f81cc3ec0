package peer

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// InspIRCd is a running private InspIRCd (IRC) instance.
type InspIRCd struct {
	// Addr is a plaintext client port where STARTTLS (IRCv3 tls, 670) is
	// offered unless the options left the starttls module out.
	Addr string
	// TLSAddr is an implicit-TLS client port (ircs) with the same profile.
	TLSAddr string
	*PKI
	// ServerName is the IRC server name, also a name in the certificate.
	ServerName string
	Version    string
	Dir        string
}

// InspIRCdOptions tune the instance.
type InspIRCdOptions struct {
	// NoStartTLS leaves the starttls module out: CAP LS lacks "tls" and
	// STARTTLS is an unknown command (which InspIRCd ignores silently
	// before registration).
	NoStartTLS bool
	// NoCAP leaves the cap module out: CAP is an unknown command too.
	NoCAP bool
	// ResolveHostnames turns the reverse lookup of clients on, as in a
	// default configuration: the server then sends "*** Looking up your
	// hostname..." unasked at connect and another notice whenever the
	// lookup ends. The resolver is a stub on 127.0.0.1:53 (the test skips
	// when that port is taken) that answers every query at once with
	// NXDOMAIN, so the second notice comes while the client is still in
	// the dialogue, as with a nearby caching resolver.
	ResolveHostnames bool
	// Conf lines are appended to inspircd.conf.
	Conf []string
}

// inspircdServerName is the server's name (in the certificate besides
// localhost and 127.0.0.1).
const inspircdServerName = "irc.test"

// StartInspIRCd starts InspIRCd in the foreground on two free loopback
// ports (plaintext with STARTTLS, and implicit TLS) with the gnutls TLS
// module, a TLS profile holding a certificate from a generated CA, and
// (unless told otherwise) the cap and starttls modules.
func StartInspIRCd(t testing.TB, o InspIRCdOptions) *InspIRCd {
	t.Helper()
	bins := Require(t, "inspircd")
	const modDir = "/usr/lib/inspircd/modules"
	for _, m := range []string{"m_ssl_gnutls.so", "m_starttls.so", "m_cap.so", "m_sslinfo.so"} {
		if _, err := os.Stat(filepath.Join(modDir, m)); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("InspIRCd module missing: %v", err)
			}
			t.Skipf("InspIRCd module missing: %v", err)
		}
	}
	dir := tempDir(t, "inspircd")
	pki := newPKI(t, dir, inspircdServerName)
	d := &InspIRCd{PKI: pki, Dir: dir, ServerName: inspircdServerName, Addr: addr(FreePort(t)), TLSAddr: addr(FreePort(t))}
	if v, err := run(t, 10*time.Second, bins["inspircd"], "--version"); err == nil {
		d.Version = v
	}
	port := func(a string) string { return a[strings.LastIndexByte(a, ':')+1:] }
	q := func(s string) string { return fmt.Sprintf("%q", s) } // no quotes or backslashes in our paths
	resolve := "no"
	if o.ResolveHostnames {
		resolve = "yes"
		stubResolver(t)
	}
	writeFile(t, filepath.Join(dir, "motd.txt"), "starttls interop test server\n", 0o644)
	conf := []string{
		`<server name="` + inspircdServerName + `" description="starttls interop test" network="StartTLSTest">`,
		`<admin name="Test" nick="admin" email="admin@irc.test">`,
		`<bind address="127.0.0.1" port="` + port(d.Addr) + `" type="clients">`,
		`<bind address="127.0.0.1" port="` + port(d.TLSAddr) + `" type="clients" sslprofile="Clients">`,
		// No ident and, unless asked, no reverse lookups: nothing leaves loopback.
		`<connect name="main" allow="*" timeout="30" pingfreq="120" hardsendq="262144" softsendq="8192" recvq="8192"` +
			` localmax="1000" globalmax="1000" useident="no" resolvehostnames="` + resolve + `">`,
		`<dns server="127.0.0.1" timeout="1">`,
		`<performance quietbursts="yes" softlimit="1024" somaxconn="128" netbuffersize="10240">`,
		`<security hideserver="" userstats="Pu">`,
		`<files motd=` + q(filepath.Join(dir, "motd.txt")) + `>`,
		`<pid file=` + q(filepath.Join(dir, "inspircd.pid")) + `>`,
		`<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target=` + q(filepath.Join(dir, "ircd.log")) + `>`,
		// ssl_gnutls needs a profile even when only STARTTLS uses it; an
		// empty dhfile keeps it from looking for dhparams.pem.
		`<module name="ssl_gnutls">`,
		`<sslprofile name="Clients" provider="gnutls" certfile=` + q(pki.CertFile) + ` keyfile=` + q(pki.KeyFile) +
			` dhfile="" requestclientcert="no">`,
		// sslinfo adds 671 "is using a secure connection" to WHOIS: the
		// server's own view of whether a session is TLS.
		`<module name="sslinfo">`,
	}
	if !o.NoCAP {
		conf = append(conf, `<module name="cap">`)
	}
	if !o.NoStartTLS {
		conf = append(conf, `<module name="starttls">`, `<starttls provider="Clients">`)
	}
	conf = append(conf, o.Conf...)
	cfg := filepath.Join(dir, "inspircd.conf")
	writeFile(t, cfg, strings.Join(conf, "\n")+"\n", 0o644)

	args := []string{"--nofork", "--config", cfg}
	if os.Geteuid() == 0 {
		args = append(args, "--runasroot") // it refuses root otherwise
	}
	// startDaemon stops it with SIGINT, which InspIRCd does not handle: it
	// dies at once. (SIGTERM would run its shutdown, where 3.15 with
	// ssl_gnutls loaded crashes with SIGSEGV and leaves a core file.)
	startDaemon(t, dir, "inspircd", bins["inspircd"], args...).ready(t, d.Addr, d.TLSAddr)
	return d
}

// Log returns the instance's log (connections, TLS profile, errors) and
// what it printed.
func (d *InspIRCd) Log() string {
	return tail(filepath.Join(d.Dir, "ircd.log")) + "\n" + tail(filepath.Join(d.Dir, "inspircd.log"))
}

// stubResolver answers DNS queries on 127.0.0.1:53 with NXDOMAIN until the
// test ends. InspIRCd always asks port 53 of its <dns server>.
func stubResolver(t testing.TB) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:53")
	if err != nil {
		Unavailable(t, fmt.Sprintf("a stub resolver needs 127.0.0.1:53: %v", err))
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 12 || buf[4] != 0 || buf[5] != 1 { // one question
				continue
			}
			i := 12
			for i < n && buf[i] != 0 {
				i += int(buf[i]) + 1
			}
			i += 5 // the root label, type and class
			if i > n {
				continue
			}
			r := append([]byte(nil), buf[:i]...)
			r[2] = 0x80 | r[2]&0x01 // response, opcode QUERY, RD echoed
			r[3] = 0x83             // RA, NXDOMAIN
			clear(r[6:12])          // no answer, authority or additional records
			_, _ = pc.WriteTo(r, from)
		}
	}()
}
