package peer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// VSFTPD is a running private vsftpd instance with AUTH TLS required for
// logins.
type VSFTPD struct {
	Addr string
	*PKI
	Version string
	Dir     string
}

// StartVSFTPD starts vsftpd in the foreground on a free loopback port.
func StartVSFTPD(t testing.TB) *VSFTPD {
	t.Helper()
	return startVSFTPD(t, false)
}

// StartVSFTPDImplicit starts vsftpd with implicit TLS (ftps, the
// handshake first, implicit_ssl=YES) on a free loopback port.
func StartVSFTPDImplicit(t testing.TB) *VSFTPD {
	t.Helper()
	return startVSFTPD(t, true)
}

func startVSFTPD(t testing.TB, implicit bool) *VSFTPD {
	t.Helper()
	bins := Require(t, "vsftpd")
	if os.Geteuid() != 0 {
		Unavailable(t, "a private vsftpd instance needs root")
	}
	dir := tempDir(t, "vsftpd")
	pki := newPKI(t, dir, "mail.test")
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	v := &VSFTPD{Addr: addr(FreePort(t)), PKI: pki, Dir: dir}
	// vsftpd -v prints its version on stdin's descriptor; it fails here,
	// so the version comes from the package.
	v.Version, _ = run(t, 10*time.Second, "dpkg-query", "-W", "-f=${Version}", "vsftpd")
	conf := []string{
		"listen=YES",
		"listen_ipv6=NO",
		"listen_address=127.0.0.1",
		"listen_port=" + v.Addr[strings.LastIndexByte(v.Addr, ':')+1:],
		"background=NO",
		"anonymous_enable=NO",
		"local_enable=YES",
		"ssl_enable=YES",
		"force_local_logins_ssl=YES",
		"force_local_data_ssl=YES",
		"rsa_cert_file=" + pki.CertFile,
		"rsa_private_key_file=" + pki.KeyFile,
		"secure_chroot_dir=" + empty,
		"seccomp_sandbox=NO",
		"xferlog_enable=NO",
		"vsftpd_log_file=" + filepath.Join(dir, "vsftpd.log"),
		"require_ssl_reuse=NO",
		"pam_service_name=vsftpd",
	}
	if implicit {
		conf = append(conf, "implicit_ssl=YES")
	}
	cfg := filepath.Join(dir, "vsftpd.conf")
	writeFile(t, cfg, strings.Join(conf, "\n")+"\n", 0o600)
	startDaemon(t, dir, "vsftpd-stdout", bins["vsftpd"], cfg).ready(t, v.Addr)
	return v
}
