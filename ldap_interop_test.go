package starttls_test

// LDAP interop: our client against a private OpenLDAP slapd (StartTLS and
// ldaps, certificates verified), and our server half against OpenLDAP's
// ldapsearch -ZZ and openssl s_client -starttls ldap.

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/proto/ldap"
)

// ldapBindInTLS binds as dn over c (inside TLS) and returns the result code.
func ldapBindInTLS(t *testing.T, c *starttls.Conn, id int, dn, pw string) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	defer c.SetDeadline(time.Time{})
	if _, err := c.Write(ldapBindReq(id, dn, pw)); err != nil {
		t.Fatalf("bind: %v", err)
	}
	raw, err := readBER(c)
	if err != nil {
		t.Fatalf("reading the bind response: %v", err)
	}
	m, err := ldap.ParseMessage(raw)
	if err != nil || m.Op != 1 || m.ID != id {
		t.Fatalf("bind answered %v, %v", m, err)
	}
	return m.ResultCode
}

func TestInteropLDAPSlapd(t *testing.T) {
	sd := peer.StartSlapd(t, peer.SlapdOptions{})
	t.Logf("slapd %s", sd.Version)
	cfg := func(name string) *starttls.Config {
		return &starttls.Config{TLSConfig: &tls.Config{RootCAs: sd.CA.Pool(), ServerName: name}, PhaseTimeout: 10 * time.Second}
	}
	for _, tc := range []struct {
		proto starttls.Protocol
		addr  string
	}{{starttls.LDAP, sd.LDAPAddr}, {starttls.LDAPS, sd.LDAPSAddr}} {
		t.Run(string(tc.proto), func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			c, err := starttls.Dial(ctx, tc.proto, tc.addr, cfg("ldap.test"))
			if err != nil {
				t.Fatalf("%v\nslapd log:\n%s", err, sd.Log())
			}
			defer c.Close()
			st := c.ConnectionState()
			if !c.Upgraded() || st.Version < tls.VersionTLS12 || !st.HandshakeComplete || len(st.VerifiedChains) == 0 {
				t.Fatalf("not upgraded to verified TLS >= 1.2: %+v", st)
			}
			// The session is usable inside TLS: the root DN can bind.
			if code := ldapBindInTLS(t, c, 10, sd.RootDN, sd.RootPW); code != 0 {
				t.Errorf("bind inside TLS: resultCode %d (%s)", code, ldap.ResultCodeName(code))
			}
			if tc.proto == starttls.LDAP {
				// A second StartTLS inside TLS is refused (operationsError).
				err := c.UpgradeAgain(ctx)
				wantErr(t, err, starttls.ErrRefused, "operationserror")
			}
			if err := c.Quit(ctx); err != nil {
				t.Errorf("quit: %v", err)
			}
		})
	}
	t.Run("wrong-name", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := starttls.Dial(ctx, starttls.LDAP, sd.LDAPAddr, cfg("other.test"))
		wantErr(t, err, starttls.ErrCertificate, "other.test")
	})
}

// A slapd without TLS does not know the StartTLS extension and answers
// protocolError "unsupported extended operation": ErrRefused naming both,
// and an opportunistic client stays in plaintext on a usable session.
func TestInteropLDAPSlapdNoTLS(t *testing.T) {
	sd := peer.StartSlapd(t, peer.SlapdOptions{NoTLS: true})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := starttls.Dial(ctx, starttls.LDAP, sd.LDAPAddr, &starttls.Config{PhaseTimeout: 10 * time.Second})
	wantErr(t, err, starttls.ErrRefused, "protocolerror")
	if !strings.Contains(err.Error(), "unsupported extended operation") {
		t.Errorf("error %q lacks slapd's diagnostic message", err)
	}

	c, err := starttls.Dial(ctx, starttls.LDAP, sd.LDAPAddr, &starttls.Config{PhaseTimeout: 10 * time.Second, Opportunistic: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Upgraded() || !errors.Is(c.Fallback, starttls.ErrRefused) {
		t.Fatalf("upgraded=%v fallback=%v", c.Upgraded(), c.Fallback)
	}
	if code := ldapBindInTLS(t, c, 5, sd.RootDN, sd.RootPW); code != 0 {
		t.Errorf("plaintext bind after the refusal: resultCode %d", code)
	}
}

// ldapAppResult is what the test application saw after Accept.
type ldapAppResult struct {
	upgraded bool
	ops      []string
	err      error
}

// ldapServeLoopback listens on loopback until the test ends and serves
// one connection there with ldapServeOne, as proto with tlsCfg and a
// generous phase deadline for slow tools.
func ldapServeLoopback(t *testing.T, proto starttls.Protocol, tlsCfg *tls.Config) (string, <-chan ldapAppResult) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.Addr().String(), ldapServeOne(l, proto, starttls.ServerConfig{TLSConfig: tlsCfg, PhaseTimeout: 10 * time.Second})
}

// ldapTool runs an LDAP or TLS client tool with env (nil: this process's)
// and an empty stdin, whose EOF after the handshake ends the session,
// within 30 s; it returns the combined output.
func ldapTool(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader("")
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ldapServeOne accepts one connection on l, runs Accept and then plays a
// minimal directory inside TLS: binds and searches succeed (no entries),
// an unbind or EOF ends it.
func ldapServeOne(l net.Listener, proto starttls.Protocol, cfg starttls.ServerConfig) <-chan ldapAppResult {
	out := make(chan ldapAppResult, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			out <- ldapAppResult{err: err}
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := starttls.Accept(ctx, conn, proto, &cfg)
		if err != nil {
			out <- ldapAppResult{err: err}
			return
		}
		defer c.Close()
		r := ldapAppResult{upgraded: c.Upgraded()}
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		for i := 0; i < 20; i++ {
			raw, err := readBER(c)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					r.err = fmt.Errorf("reading inside TLS: %w", err)
				}
				break
			}
			m, err := ldap.ParseMessage(raw)
			if err != nil {
				r.err = err
				break
			}
			r.ops = append(r.ops, m.OpName())
			var reply []byte
			switch m.Op {
			case 0:
				reply = ldapMsg(m.ID, ldapResult(1, 0, ""))
			case 3:
				reply = ldapMsg(m.ID, ldapResult(5, 0, ""))
			case 2:
				out <- r
				return
			default:
				reply = ldapMsg(m.ID, ldapResult(24, 53, "not here"))
			}
			if _, err := c.Write(reply); err != nil {
				r.err = err
				break
			}
		}
		out <- r
	}()
	return out
}

func ldapWaitApp(t *testing.T, ch <-chan ldapAppResult) ldapAppResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("server did not finish")
	}
	return ldapAppResult{}
}

// ldapToolEnv isolates OpenLDAP's client tools from the host's ldap.conf
// and ~/.ldaprc and trusts only caFile.
func ldapToolEnv(t *testing.T, caFile string) []string {
	home := t.TempDir()
	conf := filepath.Join(home, "ldap.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return append(os.Environ(), "HOME="+home, "LDAPCONF="+conf, "LDAPTLS_CACERT="+caFile, "LDAPTLS_REQCERT=demand")
}

// Our server half against ldapsearch: -ZZ makes StartTLS mandatory for
// the tool, which verifies our certificate; then it binds anonymously and
// searches the RootDSE inside TLS. Also against ldaps://.
func TestInteropLDAPServerLdapsearch(t *testing.T) {
	bins := peer.Require(t, "ldapsearch")
	pki := newPKI(t)
	caFile, err := pki.CA.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		proto  starttls.Protocol
		scheme string
		extra  []string
	}{{starttls.LDAP, "ldap", []string{"-ZZ"}}, {starttls.LDAPS, "ldaps", nil}} {
		t.Run(string(tc.proto), func(t *testing.T) {
			addr, res := ldapServeLoopback(t, tc.proto, pki.Server)
			args := append(tc.extra, "-H", tc.scheme+"://"+addr, "-x", "-b", "", "-s", "base", "-o", "nettimeout=10")
			out, err := ldapTool(t, ldapToolEnv(t, caFile), bins["ldapsearch"], args...)
			if err != nil {
				t.Errorf("ldapsearch %s: %v\n%s", strings.Join(args, " "), err, out)
			}
			if !strings.Contains(out, "result: 0 Success") {
				t.Errorf("ldapsearch output lacks the search result:\n%s", out)
			}
			r := ldapWaitApp(t, res)
			if r.err != nil || !r.upgraded {
				t.Fatalf("server: upgraded=%v err=%v", r.upgraded, r.err)
			}
			if strings.Join(r.ops, ",") != "BindRequest,SearchRequest,UnbindRequest" {
				t.Errorf("operations inside TLS: %q", r.ops)
			}
		})
	}
	t.Run("untrusted", func(t *testing.T) {
		// ldapsearch -ZZ must refuse a server whose certificate it cannot
		// verify, and our server sees a failed handshake, never a search.
		other := newPKI(t)
		addr, res := ldapServeLoopback(t, starttls.LDAP, other.Server)
		if out, err := ldapTool(t, ldapToolEnv(t, caFile), bins["ldapsearch"], "-ZZ", "-H", "ldap://"+addr, "-x", "-b", "", "-s", "base", "-o", "nettimeout=10"); err == nil {
			t.Errorf("ldapsearch accepted an untrusted certificate:\n%s", out)
		}
		if r := ldapWaitApp(t, res); r.err == nil || len(r.ops) != 0 {
			t.Errorf("server: err=%v ops=%q, want a handshake failure", r.err, r.ops)
		}
	})
}

// Our server half against openssl s_client -starttls ldap, when the
// installed openssl knows it.
func TestInteropLDAPServerOpenSSL(t *testing.T) {
	bins := peer.Require(t, "openssl")
	probe, _ := exec.Command(bins["openssl"], "s_client", "-starttls", "help").CombinedOutput()
	if !bytes.Contains(probe, []byte("ldap")) {
		peer.Unavailable(t, "openssl s_client has no -starttls ldap:\n"+string(probe))
	}
	pki := newPKI(t)
	caFile, err := pki.CA.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr, res := ldapServeLoopback(t, starttls.LDAP, pki.Server)
	out, err := ldapTool(t, nil, bins["openssl"], "s_client", "-starttls", "ldap", "-connect", addr,
		"-CAfile", caFile, "-verify_return_error", "-verify_hostname", "localhost", "-servername", "localhost")
	if err != nil {
		t.Errorf("openssl s_client: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Verify return code: 0 (ok)") {
		t.Errorf("s_client did not verify the handshake:\n%s", out)
	}
	if r := ldapWaitApp(t, res); r.err != nil || !r.upgraded {
		t.Errorf("server: upgraded=%v err=%v", r.upgraded, r.err)
	}
}

// Our server half against gnutls-cli --starttls-proto=ldap (GnuTLS 3.7
// sends the StartTLS extended request itself), the chain verified against
// our CA for the name localhost.
func TestInteropLDAPServerGnuTLS(t *testing.T) {
	bins := peer.Require(t, "gnutls-cli")
	pki := newPKI(t)
	caFile, err := pki.CA.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr, res := ldapServeLoopback(t, starttls.LDAP, pki.Server)
	_, port, _ := net.SplitHostPort(addr)
	out, _ := ldapTool(t, nil, bins["gnutls-cli"], "--starttls-proto=ldap", "--x509cafile", caFile, "-p", port, "localhost")
	if !strings.Contains(out, "Handshake was completed") || strings.Contains(out, "NOT trusted") {
		t.Errorf("gnutls-cli --starttls-proto=ldap:\n%s", out)
	}
	if r := ldapWaitApp(t, res); r.err != nil || !r.upgraded {
		t.Errorf("server: upgraded=%v err=%v", r.upgraded, r.err)
	}
}
