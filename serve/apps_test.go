package serve

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/proto/ldap"
	"github.com/starttls-go/starttls/internal/proto/mysql"
)

// The LDAP, PostgreSQL and MySQL applications against their native Debian
// clients (verification on, through STARTTLS) and against our own client.

type appServer struct {
	addr, port, ca string
	roots          *x509.CertPool
}

func startApp(t *testing.T, p starttls.Protocol) *appServer {
	t.Helper()
	dir := t.TempDir()
	cfg, ca, err := ThrowawayTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	s, err := Start(context.Background(), Options{Protocol: p, TLSConfig: cfg,
		Users: map[string]string{"user": "secret"}, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	_, port, _ := strings.Cut(s.Addr.String(), ":")
	return &appServer{addr: s.Addr.String(), port: port, ca: ca, roots: roots}
}

// runClient runs a native client with a bounded time and returns its
// combined output.
func runClient(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.WaitDelay = 2 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func clientVersion(t *testing.T, name string, args ...string) {
	t.Helper()
	out, _ := runClient(t, nil, name, args...)
	first, _, _ := strings.Cut(strings.TrimSpace(out), "\n")
	t.Logf("client: %s", first)
}

func wantAll(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

func TestLdapsearchApp(t *testing.T) {
	bins := peer.Require(t, "ldapsearch", "ldapwhoami")
	clientVersion(t, bins["ldapsearch"], "-VV")
	s := startApp(t, starttls.LDAP)
	url := "ldap://127.0.0.1:" + s.port
	// A throwaway HOME: no ~/.ldaprc of the machine's.
	home := "HOME=" + t.TempDir()
	env := []string{"LDAPTLS_CACERT=" + s.ca, "LDAPTLS_REQCERT=demand", home}
	out, err := runClient(t, env, bins["ldapsearch"], "-ZZ", "-H", url, "-x", "-b", "", "-s", "base", "-o", "nettimeout=5", "-l", "5")
	if err != nil {
		t.Fatalf("ldapsearch -ZZ: %v\n%s", err, out)
	}
	wantAll(t, "ldapsearch root DSE", out, "namingContexts: dc=localhost", "supportedLDAPVersion: 3",
		"supportedExtension: 1.3.6.1.4.1.1466.20037", "supportedExtension: 1.3.6.1.4.1.4203.1.11.3", "result: 0 Success")

	// A simple bind is checked, and WhoAmI tells who is bound.
	out, err = runClient(t, env, bins["ldapwhoami"], "-ZZ", "-H", url, "-x", "-D", "cn=user,dc=test", "-w", "secret", "-o", "nettimeout=5")
	if err != nil || !strings.Contains(out, "dn:cn=user,dc=test") {
		t.Errorf("ldapwhoami with the right password: %v\n%s", err, out)
	}
	out, err = runClient(t, env, bins["ldapwhoami"], "-ZZ", "-H", url, "-x", "-D", "cn=user,dc=test", "-w", "wrong", "-o", "nettimeout=5")
	if err == nil || !strings.Contains(out, "Invalid credentials (49)") {
		t.Errorf("ldapwhoami with a wrong password: %v\n%s", err, out)
	}
	// Other bases do not exist.
	out, err = runClient(t, env, bins["ldapsearch"], "-ZZ", "-H", url, "-x", "-b", "dc=other", "-o", "nettimeout=5")
	if err == nil || !strings.Contains(out, "result: 32 No such object") {
		t.Errorf("ldapsearch -b dc=other: %v\n%s", err, out)
	}
	// Verification is on: with another CA, -ZZ fails before any operation.
	_, otherCA, err := ThrowawayTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err = runClient(t, []string{"LDAPTLS_CACERT=" + otherCA, "LDAPTLS_REQCERT=demand", home}, bins["ldapsearch"], "-ZZ", "-H", url, "-x", "-b", "", "-s", "base", "-o", "nettimeout=5")
	if err == nil || strings.Contains(out, "namingContexts") {
		t.Errorf("ldapsearch trusted a CA it was not given: %v\n%s", err, out)
	}
}

func TestPsqlApp(t *testing.T) {
	bins := peer.Require(t, "psql")
	clientVersion(t, bins["psql"], "--version")
	s := startApp(t, starttls.Postgres)
	psql := func(pass, ca, query string) (string, error) {
		conn := "host=localhost hostaddr=127.0.0.1 port=" + s.port + " user=user dbname=db sslmode=verify-full sslrootcert=" + ca
		// A throwaway HOME: no ~/.pgpass, ~/.postgresql or psqlrc of the machine's.
		return runClient(t, []string{"HOME=" + t.TempDir(), "PGPASSWORD=" + pass, "PGCONNECT_TIMEOUT=5"},
			bins["psql"], "-X", "-w", conn, "-c", query)
	}
	out, err := psql("secret", s.ca, "SELECT 1")
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	wantAll(t, "psql SELECT 1", out, "?column?", "1", "(1 row)")
	out, err = psql("secret", s.ca, "select version()")
	if err != nil || !strings.Contains(out, "starttls-go") {
		t.Errorf("psql select version(): %v\n%s", err, out)
	}
	out, err = psql("secret", s.ca, "SELECT * FROM pg_tables")
	if err == nil || !strings.Contains(out, "ERROR") {
		t.Errorf("psql with an unsupported query: %v\n%s", err, out)
	}
	out, err = psql("wrong", s.ca, "SELECT 1")
	if err == nil || !strings.Contains(out, "password authentication failed") {
		t.Errorf("psql with a wrong password: %v\n%s", err, out)
	}
	out, err = psql("secret", "/dev/null", "SELECT 1")
	if err == nil || strings.Contains(out, "(1 row)") {
		t.Errorf("psql trusted a CA it was not given: %v\n%s", err, out)
	}
}

func TestMariaDBApp(t *testing.T) {
	bins := peer.Require(t, "mariadb")
	clientVersion(t, bins["mariadb"], "--version")
	s := startApp(t, starttls.MySQL)
	mariadb := func(pass, ca, query string) (string, error) {
		return runClient(t, nil, bins["mariadb"], "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", s.port,
			"-u", "user", "-p"+pass, "--connect-timeout=5", "--ssl-verify-server-cert", "--ssl-ca="+ca, "-e", query)
	}
	out, err := mariadb("secret", s.ca, "select 1")
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	if strings.Join(strings.Fields(out), " ") != "1 1" {
		t.Errorf("mariadb select 1: %q", out)
	}
	out, err = mariadb("secret", s.ca, "select @@version")
	if err != nil || !strings.Contains(out, "starttls-go") {
		t.Errorf("mariadb select @@version: %v\n%s", err, out)
	}
	out, err = mariadb("secret", s.ca, "show databases")
	if err == nil || !strings.Contains(out, "ERROR 1064") {
		t.Errorf("mariadb with an unsupported query: %v\n%s", err, out)
	}
	out, err = mariadb("wrong", s.ca, "select 1")
	if err == nil || !strings.Contains(out, "Access denied") {
		t.Errorf("mariadb with a wrong password: %v\n%s", err, out)
	}
	// Verification is on: a CA that did not sign the certificate fails.
	_, otherCA, err := ThrowawayTLS(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	out, err = mariadb("secret", otherCA, "select 1")
	if err == nil {
		t.Errorf("mariadb trusted a CA it was not given:\n%s", out)
	}
}

func dialApp(t *testing.T, s *appServer, p starttls.Protocol) *starttls.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := starttls.Dial(ctx, p, s.addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: s.roots, ServerName: "localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

// Our own client against the LDAP application: every operation it answers.
func TestLDAPAppLibraryClient(t *testing.T) {
	s := startApp(t, starttls.LDAP)
	c := dialApp(t, s, starttls.LDAP)
	// A second StartTLS inside TLS is refused (RFC 4511 §4.14.2).
	if err := c.UpgradeAgain(context.Background()); !errors.Is(err, starttls.ErrRefused) {
		t.Errorf("second StartTLS: %v, want ErrRefused", err)
	}
	br := bufio.NewReader(c)
	id := 10
	ask := func(op int, body func(b *cryptobyte.Builder)) []*ldap.Message {
		t.Helper()
		id++
		if _, err := c.Write(ldapMessage(id, op, body)); err != nil {
			t.Fatal(err)
		}
		var got []*ldap.Message
		for i := 0; i < 10; i++ {
			raw, err := readBERMessage(br, 1<<16)
			if err != nil {
				t.Fatalf("reading the answer to op %d: %v", op, err)
			}
			m, err := ldap.ParseMessage(raw)
			if err != nil {
				t.Fatalf("answer to op %d: %v", op, err)
			}
			if m.ID != id {
				t.Fatalf("answer with messageID %d, want %d", m.ID, id)
			}
			got = append(got, m)
			if m.HasResult {
				return got
			}
			if op == opSearch && !strings.Contains(string(raw), "namingContexts") {
				t.Errorf("root DSE entry lacks namingContexts: %q", raw)
			}
		}
		t.Fatal("no final response")
		return nil
	}
	bind := func(name, pass string) int {
		m := ask(opBind, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(3)
			b.AddASN1OctetString([]byte(name))
			b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(pass)) })
		})
		return m[len(m)-1].ResultCode
	}
	search := func(base string) []*ldap.Message {
		return ask(opSearch, func(b *cryptobyte.Builder) {
			b.AddASN1OctetString([]byte(base))
			b.AddASN1Enum(0)
			b.AddASN1Enum(0)
			b.AddASN1Int64(0)
			b.AddASN1Int64(0)
			b.AddASN1Boolean(false)
			b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("objectClass")) })
			b.AddASN1(cbasn1.SEQUENCE, func(*cryptobyte.Builder) {})
		})
	}
	for _, tc := range []struct {
		name, pass string
		want       int
	}{{"", "", ldapSuccess}, {"cn=user,dc=test", "wrong", ldapInvalidCredentials},
		{"cn=user,dc=test", "", ldapUnwillingToPerform}, {"cn=user,dc=test", "secret", ldapSuccess}} {
		if got := bind(tc.name, tc.pass); got != tc.want {
			t.Errorf("bind %q/%q: resultCode %d, want %d", tc.name, tc.pass, got, tc.want)
		}
	}
	if m := search(""); len(m) != 2 || m[0].Op != opSearchEntry || m[1].Op != opSearchDone || m[1].ResultCode != 0 {
		t.Errorf("root DSE search: %v", m)
	}
	if m := search("dc=nowhere"); len(m) != 1 || m[0].ResultCode != ldapNoSuchObject {
		t.Errorf("search of another base: %v", m)
	}
	who := ask(opExtended, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(ldapWhoAmIOID)) })
	})
	if m := who[0]; m.ResultCode != 0 || !m.HasValue {
		t.Errorf("WhoAmI: %v", m)
	}
	// Unbind ends the session: the server closes.
	if _, err := c.Write(ldapMessage(99, opUnbind, func(*cryptobyte.Builder) {})); err != nil {
		t.Fatal(err)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Unbind: %v, want EOF", err)
	}
}

// pgRead reads one backend message.
func pgRead(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("reading a backend message: %v", err)
	}
	body := make([]byte, binary.BigEndian.Uint32(hdr[1:])-4)
	if _, err := io.ReadFull(br, body); err != nil {
		t.Fatal(err)
	}
	return hdr[0], body
}

func TestPostgresAppLibraryClient(t *testing.T) {
	s := startApp(t, starttls.Postgres)
	login := func(pass string) (*starttls.Conn, *bufio.Reader, byte) {
		c := dialApp(t, s, starttls.Postgres)
		br := bufio.NewReader(c)
		params := "user\x00user\x00database\x00db\x00\x00"
		pkt := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
		pkt = binary.BigEndian.AppendUint32(pkt, 3<<16)
		if _, err := c.Write(append(pkt, params...)); err != nil {
			t.Fatal(err)
		}
		if typ, body := pgRead(t, br); typ != 'R' || binary.BigEndian.Uint32(body) != 3 {
			t.Fatalf("first answer %q %q, want AuthenticationCleartextPassword", typ, body)
		}
		c.Write(append([]byte{'p', 0, 0, 0, byte(5 + len(pass))}, cstr(pass)...))
		for i := 0; i < 30; i++ {
			typ, _ := pgRead(t, br)
			if typ == 'Z' || typ == 'E' {
				return c, br, typ
			}
		}
		t.Fatal("no ReadyForQuery")
		return nil, nil, 0
	}
	if _, _, typ := login("wrong"); typ != 'E' {
		t.Errorf("wrong password: %q, want an ErrorResponse", typ)
	}
	c, br, typ := login("secret")
	if typ != 'Z' {
		t.Fatalf("login: %q", typ)
	}
	query := func(q string) string {
		msg := append([]byte{'Q'}, binary.BigEndian.AppendUint32(nil, uint32(5+len(q)))...)
		if _, err := c.Write(append(msg, cstr(q)...)); err != nil {
			t.Fatal(err)
		}
		var types []byte
		for i := 0; i < 10; i++ {
			typ, _ := pgRead(t, br)
			types = append(types, typ)
			if typ == 'Z' {
				break
			}
		}
		return string(types)
	}
	for q, want := range map[string]string{"SELECT 1": "TDCZ", "select 42;": "TDCZ", "SELECT now()": "EZ", "": "IZ"} {
		if got := query(q); got != want {
			t.Errorf("query %q: messages %q, want %q", q, got, want)
		}
	}
	c.Write([]byte{'X', 0, 0, 0, 4})
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after Terminate: %v, want EOF", err)
	}
	// A second SSLRequest inside TLS is refused.
	again := dialApp(t, s, starttls.Postgres)
	if err := again.UpgradeAgain(context.Background()); !errors.Is(err, starttls.ErrRefused) {
		t.Errorf("second SSLRequest: %v, want ErrRefused", err)
	}
}

func myRead(t *testing.T, br *bufio.Reader) (byte, []byte) {
	t.Helper()
	var hdr [4]byte
	if _, err := io.ReadFull(br, hdr[:]); err != nil {
		t.Fatalf("reading a packet: %v", err)
	}
	p := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
	if _, err := io.ReadFull(br, p); err != nil {
		t.Fatal(err)
	}
	return hdr[3], p
}

func TestMySQLAppLibraryClient(t *testing.T) {
	s := startApp(t, starttls.MySQL)
	login := func(pass, plugin string) (*starttls.Conn, *bufio.Reader, []byte) {
		c := dialApp(t, s, starttls.MySQL)
		br := bufio.NewReader(c)
		args, _ := c.CapabilitiesBefore.Args("AUTH-DATA")
		if len(args) == 0 {
			t.Fatalf("no scramble in %q", c.CapabilitiesBefore)
		}
		scramble, _ := hex.DecodeString(args[0])
		token := nativePassword(scramble, pass)
		if plugin != myPlugin {
			token = []byte("not a native token")
		}
		caps := mysql.ClientProtocol41 | mysql.ClientSecureConnection | mysql.ClientPluginAuth | mysql.ClientSSL
		p := binary.LittleEndian.AppendUint32(nil, caps)
		p = binary.LittleEndian.AppendUint32(p, 1<<24)
		p = append(p, 45)
		p = append(p, make([]byte, 23)...)
		p = append(p, cstr("user")...)
		p = append(append(p, byte(len(token))), token...)
		p = append(p, cstr(plugin)...)
		if _, err := c.Write(appendPacket(nil, 2, p)); err != nil {
			t.Fatal(err)
		}
		seq, reply := myRead(t, br)
		if len(reply) > 0 && reply[0] == 0xfe {
			// AuthSwitchRequest: plugin name, then the same scramble.
			if !strings.HasPrefix(string(reply[1:]), myPlugin+"\x00") {
				t.Fatalf("auth switch to %q", reply)
			}
			if _, err := c.Write(appendPacket(nil, seq+1, nativePassword(scramble, pass))); err != nil {
				t.Fatal(err)
			}
			_, reply = myRead(t, br)
		}
		return c, br, reply
	}
	if _, _, r := login("wrong", myPlugin); len(r) == 0 || r[0] != 0xff {
		t.Errorf("wrong password: %q, want ERR", r)
	}
	if _, _, r := login("secret", "caching_sha2_password"); len(r) == 0 || r[0] != 0 {
		t.Errorf("login through an auth switch: %q, want OK", r)
	}
	c, br, r := login("secret", myPlugin)
	if len(r) == 0 || r[0] != 0 {
		t.Fatalf("login: %q, want OK", r)
	}
	command := func(cmd byte, arg string) [][]byte {
		if _, err := c.Write(appendPacket(nil, 0, append([]byte{cmd}, arg...))); err != nil {
			t.Fatal(err)
		}
		var got [][]byte
		eofs := 0
		for i := 0; i < 10; i++ {
			_, p := myRead(t, br)
			got = append(got, p)
			if p[0] == 0xfe {
				eofs++
			}
			if (i == 0 && (p[0] == 0 || p[0] == 0xff)) || eofs == 2 {
				break
			}
		}
		return got
	}
	if got := command(0x03, "select 1"); len(got) != 5 || string(got[3]) != "\x011" {
		t.Errorf("select 1: %q", got)
	}
	if got := command(0x03, "SELECT  @@version"); len(got) != 5 || !strings.Contains(string(got[3]), "starttls-go") {
		t.Errorf("select @@version: %q", got)
	}
	if got := command(0x0e, ""); len(got) != 1 || got[0][0] != 0 {
		t.Errorf("COM_PING: %q", got)
	}
	for _, cmd := range []struct {
		c   byte
		arg string
	}{{0x03, "drop table x"}, {0x1f, ""}} {
		if got := command(cmd.c, cmd.arg); len(got) != 1 || got[0][0] != 0xff {
			t.Errorf("command 0x%02x %q: %q, want ERR", cmd.c, cmd.arg, got)
		}
	}
	c.Write(appendPacket(nil, 0, []byte{0x01}))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after COM_QUIT: %v, want EOF", err)
	}
}

// The demo checks every protocol with a server half end to end, which
// needs a real application behind each (not the drain fallback).
func TestEveryServerProtocolHasApp(t *testing.T) {
	for _, p := range starttls.Protocols() {
		if info, err := starttls.Lookup(p); err == nil && info.Server && !HasApp(p) {
			t.Errorf("%s has a server half but no application", p)
		}
	}
}

// fuzzConn feeds a fixed input to an application and drops its output.
type fuzzConn struct {
	net.Conn // nil: only the methods below are used
	r        *bytes.Reader
}

func (c *fuzzConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *fuzzConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *fuzzConn) Close() error                     { return nil }
func (c *fuzzConn) SetDeadline(time.Time) error      { return nil }
func (c *fuzzConn) SetReadDeadline(time.Time) error  { return nil }
func (c *fuzzConn) SetWriteDeadline(time.Time) error { return nil }

// runAppOn runs an application on input, inside "TLS" or not; it must
// return (the input ends) without a panic.
func runAppOn(a app, in []byte, secure bool) {
	c := &starttls.Conn{Conn: &fuzzConn{r: bytes.NewReader(in)}}
	if secure {
		c.TLS = &tls.Conn{} // only compared with nil by the applications
	}
	o := &Options{Hostname: "localhost", IdleTimeout: time.Second, Users: map[string]string{"user": "secret"}}
	a(context.Background(), &session{c: c, o: o, br: bufio.NewReaderSize(c, 64<<10)})
}

func FuzzLDAPApp(f *testing.F) {
	bind := ldapMessage(1, opBind, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1OctetString([]byte("cn=user,dc=test"))
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("secret")) })
	})
	search := ldapMessage(2, opSearch, func(b *cryptobyte.Builder) {
		b.AddASN1OctetString(nil)
		b.AddASN1Enum(0)
		b.AddASN1Enum(0)
		b.AddASN1Int64(0)
		b.AddASN1Int64(0)
		b.AddASN1Boolean(false)
		b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("objectClass")) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1OctetString([]byte("namingContexts")) })
	})
	who := ldapMessage(3, opExtended, func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(ldapWhoAmIOID)) })
	})
	f.Add(append(append(bind, search...), who...), true)
	f.Add(search, false)
	// A non-minimal four-octet length, as OpenLDAP and AD clients send.
	f.Add([]byte("\x30\x84\x00\x00\x00\x05\x02\x01\x05\x42\x00"), true)
	f.Fuzz(func(t *testing.T, in []byte, secure bool) { runAppOn(ldapApp, in, secure) })
}

func FuzzPostgresApp(f *testing.F) {
	params := "user\x00user\x00database\x00db\x00\x00"
	start := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	start = append(binary.BigEndian.AppendUint32(start, 3<<16), params...)
	pass := append([]byte{'p', 0, 0, 0, 11}, "secret\x00"...)
	q := append([]byte{'Q', 0, 0, 0, 13}, "SELECT 1\x00"...)
	f.Add(append(append(append([]byte(nil), start...), pass...), q...), true)
	f.Add(append(append([]byte(nil), start...), 'P', 0, 0, 0, 4, 'S', 0, 0, 0, 4), false)
	f.Fuzz(func(t *testing.T, in []byte, secure bool) { runAppOn(postgresApp, in, secure) })
}

func FuzzMySQLApp(f *testing.F) {
	caps := mysql.ClientProtocol41 | mysql.ClientSecureConnection | mysql.ClientPluginAuth
	p := binary.LittleEndian.AppendUint32(nil, caps)
	p = append(binary.LittleEndian.AppendUint32(p, 1<<24), 45)
	p = append(p, make([]byte, 23)...)
	p = append(p, "user\x00\x00mysql_native_password\x00"...)
	login := appendPacket(nil, 2, p)
	f.Add(appendPacket(login, 0, []byte("\x03select 1")), true)
	f.Add(appendPacket(login, 0, []byte("\x0e")), false)
	f.Fuzz(func(t *testing.T, in []byte, secure bool) { runAppOn(mysqlApp, in, secure) })
}
