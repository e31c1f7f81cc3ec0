package starttls_test

// Interop with real database software on loopback: our client against
// PostgreSQL and MariaDB started by internal/peer (certificates verified),
// and our server halves against psql, openssl s_client -starttls
// postgres/mysql and the mariadb client. The database clients give up
// after TLS because our test server speaks no more of the protocol; the
// assertions are made on the server side: the TLS handshake completed and
// the first bytes inside TLS are the client's startup/handshake response.

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	mysqlwire "github.com/starttls-go/starttls/internal/proto/mysql"
	"github.com/starttls-go/starttls/internal/proto/postgres"
)

// ---- our client against the real servers ----

func TestDBPostgresClientInterop(t *testing.T) {
	pg := peer.StartPostgres(t, peer.PostgresOptions{})
	t.Logf("peer: %s", pg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("upgrade-and-login", func(t *testing.T) {
		c, err := starttls.Dial(ctx, starttls.Postgres, pg.Addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: pg.CA.Pool()}})
		if err != nil {
			t.Fatalf("%v\n%s", err, pg.Log())
		}
		defer c.Close()
		st := c.ConnectionState()
		if !c.Upgraded() || !st.HandshakeComplete || st.Version < tls.VersionTLS12 || len(st.VerifiedChains) == 0 {
			t.Fatalf("TLS state %+v", st)
		}
		// The server accepts a login inside TLS (pg_hba: hostssl trust).
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(pgStartup("user", pg.User, "database", "postgres")); err != nil {
			t.Fatal(err)
		}
		typ, body := readPgMessage(t, c)
		if typ != 'R' || !bytes.Equal(body, []byte{0, 0, 0, 0}) {
			t.Fatalf("answer %q %q, want AuthenticationOk\n%s", typ, body, pg.Log())
		}
		for i := 0; i < 100 && typ != 'Z'; i++ {
			typ, _ = readPgMessage(t, c)
		}
		if typ != 'Z' {
			t.Fatal("no ReadyForQuery")
		}
		_, _ = c.Write([]byte{'X', 0, 0, 0, 4})
	})

	// The real server's refusal of plaintext is what our server half sends:
	// a FATAL ErrorResponse with SQLSTATE 28000.
	t.Run("plaintext-refused-by-server", func(t *testing.T) {
		conn, err := net.DialTimeout("tcp", pg.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write(pgStartup("user", pg.User, "database", "postgres")); err != nil {
			t.Fatal(err)
		}
		typ, body := readPgMessage(t, conn)
		e, err := postgres.ParseError(body)
		if typ != 'E' || err != nil || e.Code != "28000" || e.Severity != "FATAL" {
			t.Errorf("server answered %q %+v %v", typ, e, err)
		}
		t.Logf("PostgreSQL's own refusal: %s", e)
	})

	t.Run("wrong-ca", func(t *testing.T) {
		_, err := starttls.Dial(ctx, starttls.Postgres, pg.Addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: newPKI(t).CA.Pool()}})
		wantErr(t, err, starttls.ErrCertificate, "certificate")
	})
}

// readPgMessage reads one backend message (type, body).
func readPgMessage(t testing.TB, r io.Reader) (byte, []byte) {
	t.Helper()
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		t.Fatalf("reading a message: %v", err)
	}
	n := binary.BigEndian.Uint32(hdr[1:])
	if n < 4 || n > 1<<20 {
		t.Fatalf("message %q of length %d", hdr[0], n)
	}
	body := make([]byte, n-4)
	if _, err := io.ReadFull(r, body); err != nil {
		t.Fatalf("reading a message body: %v", err)
	}
	return hdr[0], body
}

func TestDBMariaDBClientInterop(t *testing.T) {
	m := peer.StartMariaDB(t, peer.MariaDBOptions{})
	t.Logf("peer: %s", m.Version)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t.Run("upgrade-and-login", func(t *testing.T) {
		c, err := starttls.Dial(ctx, starttls.MySQL, m.Addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: m.CA.Pool()}})
		if err != nil {
			t.Fatalf("%v\n%s", err, m.Log())
		}
		defer c.Close()
		st := c.ConnectionState()
		if !c.Upgraded() || !st.HandshakeComplete || st.Version < tls.VersionTLS12 || len(st.VerifiedChains) == 0 {
			t.Fatalf("TLS state %+v", st)
		}
		if !strings.Contains(c.Greeting, "MariaDB") || !c.CapabilitiesBefore.Has("CLIENT_SSL") || !c.CapabilitiesBefore.Has("AUTH-DATA") {
			t.Errorf("greeting %q, capabilities %q", c.Greeting, c.CapabilitiesBefore)
		}
		// Log in as root (no password) inside TLS: HandshakeResponse41,
		// sequence id 2, the capabilities of our SSLRequest.
		args, _ := c.CapabilitiesBefore.Args("CAPABILITIES")
		var server uint32
		_, _ = fmt.Sscanf(args[0], "0x%x", &server)
		caps := (mysqlwire.ClientLongFlag|mysqlwire.ClientTransactions|mysqlwire.ClientMultiResults|mysqlwire.ClientPluginAuth)&server |
			mysqlwire.ClientSSL | mysqlwire.ClientProtocol41 | mysqlwire.ClientSecureConnection
		p := binary.LittleEndian.AppendUint32(nil, caps)
		p = binary.LittleEndian.AppendUint32(p, 1<<24)
		p = append(p, 45)
		p = append(p, make([]byte, 23)...)
		p = append(p, m.User+"\x00"...)
		p = append(p, 0) // empty auth response
		if caps&mysqlwire.ClientPluginAuth != 0 {
			p = append(p, "mysql_native_password\x00"...)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(myPacket(2, p)); err != nil {
			t.Fatal(err)
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			t.Fatal(err)
		}
		body := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
		if _, err := io.ReadFull(c, body); err != nil {
			t.Fatal(err)
		}
		if hdr[3] != 3 || len(body) == 0 || body[0] != 0 {
			e, _ := mysqlwire.ParseError(body)
			t.Fatalf("login answer seq %d %q (%s), want OK\n%s", hdr[3], body, e, m.Log())
		}
		_, _ = c.Write(myPacket(0, []byte{1})) // COM_QUIT
	})

	// The real server's refusal of plaintext under require_secure_transport,
	// for comparison with our server half's ERR packet.
	t.Run("plaintext-refused-by-server", func(t *testing.T) {
		mysql := peer.Require(t, "mariadb")["mariadb"]
		if out := runClient(t, mysql, "--no-defaults", "-S", m.Socket, "-u", "root", "-e", "SET GLOBAL require_secure_transport=ON"); out != "" {
			t.Fatalf("setting require_secure_transport: %s", out)
		}
		conn, err := net.DialTimeout("tcp", m.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		p := newFakePeer(t, conn)
		if _, b := p.readPacket(); b == nil {
			return
		}
		resp := binary.LittleEndian.AppendUint32(nil, mysqlwire.ClientProtocol41|mysqlwire.ClientSecureConnection|mysqlwire.ClientPluginAuth)
		resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
		resp = append(append(resp, 45), make([]byte, 23)...)
		resp = append(resp, "root\x00\x00mysql_native_password\x00"...)
		p.send(string(myPacket(1, resp)))
		_, b := p.readPacket()
		e, err := mysqlwire.ParseError(b)
		if err != nil {
			t.Fatalf("server answered %q to a plaintext login under require_secure_transport", b)
		}
		t.Logf("MariaDB's own refusal: %s", e)
	})

	t.Run("wrong-ca", func(t *testing.T) {
		_, err := starttls.Dial(ctx, starttls.MySQL, m.Addr, &starttls.Config{TLSConfig: &tls.Config{RootCAs: newPKI(t).CA.Pool()}})
		wantErr(t, err, starttls.ErrCertificate, "certificate")
	})
}

// ---- real clients against our server ----

// dbServer runs Accept for one connection on a loopback listener and then
// app on the upgraded Conn; it returns the address, the CA file and the
// outcome.
func dbServer(t *testing.T, proto starttls.Protocol, app func(c *starttls.Conn) error) (string, string, <-chan error) {
	t.Helper()
	ca, err := certs.NewCA("db interop CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	caFile, err := ca.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	out := make(chan error, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			out <- err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		c, err := starttls.Accept(ctx, conn, proto, &starttls.ServerConfig{
			TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}, PhaseTimeout: 10 * time.Second})
		if err != nil {
			out <- err
			return
		}
		defer c.Close()
		st := c.ConnectionState()
		if !c.Upgraded() || !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
			out <- fmt.Errorf("not upgraded: %+v", st)
			return
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		out <- app(c)
	}()
	return l.Addr().String(), caFile, out
}

// runClient runs a client program with a deadline and returns its output.
func runClient(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "PGCONNECT_TIMEOUT=10")
	cmd.Stdin = nil
	cmd.WaitDelay = 5 * time.Second
	out, _ := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Errorf("%s did not finish within 30 s:\n%s", name, out)
	}
	return string(out)
}

func waitServer(t *testing.T, res <-chan error) {
	t.Helper()
	select {
	case err := <-res:
		if err != nil {
			t.Fatalf("server side: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server side did not finish")
	}
}

// pgReadStartup reads the first message inside TLS and checks that it is
// a protocol 3.0 StartupMessage for user and database x.
func pgReadStartup(c io.Reader) error {
	var hdr [4]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return fmt.Errorf("reading the startup packet: %w", err)
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n < 8 || n > 10000 {
		return fmt.Errorf("first packet inside TLS has length %d", n)
	}
	pkt := make([]byte, n)
	copy(pkt, hdr[:])
	if _, err := io.ReadFull(c, pkt[4:]); err != nil {
		return err
	}
	st, err := postgres.ParseStartup(pkt)
	if err != nil {
		return err
	}
	if st.Code != 3<<16 || st.Params["user"] != "x" || st.Params["database"] != "x" {
		return fmt.Errorf("startup %+v", st)
	}
	return nil
}

func TestDBPsqlAgainstOurServer(t *testing.T) {
	psql := peer.Require(t, "psql")["psql"]
	for _, mode := range []string{"verify-full", "require"} {
		t.Run(mode, func(t *testing.T) {
			const bye = "db-interop: goodbye from the test server"
			addr, caFile, res := dbServer(t, starttls.Postgres, func(c *starttls.Conn) error {
				if err := pgReadStartup(c); err != nil {
					return err
				}
				_, err := c.Write(pgErrorResponse("SFATAL", "VFATAL", "C28P01", "M"+bye))
				return err
			})
			host, port, _ := net.SplitHostPort(addr)
			out := runClient(t, psql, "-X", "-w", "-c", "select 1",
				fmt.Sprintf("host=%s port=%s sslmode=%s sslrootcert=%s dbname=x user=x connect_timeout=10", host, port, mode, caFile))
			waitServer(t, res)
			// psql saw our ErrorResponse: it came through TLS.
			if !strings.Contains(out, bye) {
				t.Errorf("psql output lacks the server's message:\n%s", out)
			}
		})
	}
}

func TestDBOpenSSLAgainstOurServer(t *testing.T) {
	openssl := peer.Require(t, "openssl")["openssl"]
	for _, tc := range []struct {
		proto starttls.Protocol
		flag  string
	}{{starttls.Postgres, "postgres"}, {starttls.MySQL, "mysql"}} {
		t.Run(tc.flag, func(t *testing.T) {
			addr, caFile, res := dbServer(t, tc.proto, func(c *starttls.Conn) error {
				_, err := c.Write([]byte("HELLO-FROM-INSIDE-TLS\n"))
				return err
			})
			out := runClient(t, openssl, "s_client", "-starttls", tc.flag, "-connect", addr,
				"-CAfile", caFile, "-verify_return_error", "-verify_ip", "127.0.0.1", "-ign_eof")
			waitServer(t, res)
			if !strings.Contains(out, "HELLO-FROM-INSIDE-TLS") || !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Errorf("s_client output:\n%s", out)
			}
		})
	}
}

func TestDBMariaDBClientAgainstOurServer(t *testing.T) {
	var client string
	for _, n := range []string{"mariadb", "mysql"} {
		if p, ok := peer.Look(n); ok {
			client = p
			break
		}
	}
	if client == "" {
		client = peer.Require(t, "mariadb")["mariadb"]
	}
	const bye = "db-interop: goodbye from the test server"
	addr, caFile, res := dbServer(t, starttls.MySQL, func(c *starttls.Conn) error {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return fmt.Errorf("reading the HandshakeResponse: %w", err)
		}
		body := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
		if len(body) > 16384 {
			return fmt.Errorf("HandshakeResponse of %d bytes", len(body))
		}
		if _, err := io.ReadFull(c, body); err != nil {
			return err
		}
		r, err := mysqlwire.ParseResponse(body)
		if err != nil {
			return err
		}
		if hdr[3] != 2 || r.User != "x" || r.Capabilities&mysqlwire.ClientSSL == 0 {
			return fmt.Errorf("first packet inside TLS: seq %d %+v", hdr[3], r)
		}
		_, err = c.Write(myErr(3, 1045, "28000", bye))
		return err
	})
	host, port, _ := net.SplitHostPort(addr)
	out := runClient(t, client, "--no-defaults", "-h", host, "-P", port, "-u", "x", "--connect-timeout=10",
		"--ssl", "--ssl-ca="+caFile, "--ssl-verify-server-cert", "-e", "select 1")
	waitServer(t, res)
	if !strings.Contains(out, bye) {
		t.Errorf("%s output lacks the server's message:\n%s", client, out)
	}
}

// talkUntil runs a client with its stdin held open until its output shows
// want (or 10 s pass): gnutls-cli and s_client stop reading the
// connection once stdin ends.
func talkUntil(t *testing.T, want, name string, args ...string) string {
	t.Helper()
	out, _ := peer.Talk(t, 30*time.Second, func(_ context.Context, _ io.Writer, out *peer.Buffer) {
		for i := 0; i < 200 && !strings.Contains(out.String(), want); i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}, name, args...)
	return out
}

// gnutls-cli --starttls-proto=postgres against our server half: SSLRequest,
// 'S', a verified handshake, and the server's first bytes inside TLS.
func TestDBGnuTLSAgainstOurServer(t *testing.T) {
	gnutls := peer.Require(t, "gnutls-cli")["gnutls-cli"]
	const hello = "HELLO-FROM-INSIDE-TLS"
	addr, caFile, res := dbServer(t, starttls.Postgres, func(c *starttls.Conn) error {
		_, err := c.Write([]byte(hello + "\n"))
		return err
	})
	_, port, _ := net.SplitHostPort(addr)
	out := talkUntil(t, hello, gnutls, "--starttls-proto=postgres", "--x509cafile", caFile, "-p", port, "localhost")
	waitServer(t, res)
	if !strings.Contains(out, "Handshake was completed") || !strings.Contains(out, hello) || strings.Contains(out, "NOT trusted") {
		t.Errorf("gnutls-cli output:\n%s", out)
	}
}

// openssl s_client -alpn postgresql (and gnutls-cli --alpn=postgresql)
// against our direct-SSL server half (PostgreSQL 17's
// sslnegotiation=direct): TLS from the first byte, ALPN "postgresql"
// agreed, the chain verified. A client that offers another
// ALPN protocol is refused in the handshake.
func TestDBOpenSSLDirectAgainstOurServer(t *testing.T) {
	openssl := peer.Require(t, "openssl")["openssl"]
	const hello = "HELLO-FROM-INSIDE-TLS"
	addr, caFile, res := dbServer(t, starttls.PostgresDirect, func(c *starttls.Conn) error {
		if p := c.ConnectionState().NegotiatedProtocol; p != postgres.ALPN {
			return fmt.Errorf("ALPN %q, want %q", p, postgres.ALPN)
		}
		_, err := c.Write([]byte(hello + "\n"))
		return err
	})
	out := talkUntil(t, hello, openssl, "s_client", "-connect", addr, "-alpn", postgres.ALPN,
		"-CAfile", caFile, "-verify_return_error", "-verify_hostname", "localhost", "-servername", "localhost", "-ign_eof")
	waitServer(t, res)
	for _, want := range []string{"ALPN protocol: postgresql", "Verify return code: 0 (ok)", hello} {
		if !strings.Contains(out, want) {
			t.Errorf("s_client output lacks %q:\n%s", want, out)
		}
	}
	t.Run("gnutls-cli", func(t *testing.T) {
		gnutls := peer.Require(t, "gnutls-cli")["gnutls-cli"]
		addr, caFile, res := dbServer(t, starttls.PostgresDirect, func(c *starttls.Conn) error {
			if p := c.ConnectionState().NegotiatedProtocol; p != postgres.ALPN {
				return fmt.Errorf("ALPN %q, want %q", p, postgres.ALPN)
			}
			_, err := c.Write([]byte(hello + "\n"))
			return err
		})
		_, port, _ := net.SplitHostPort(addr)
		out := talkUntil(t, hello, gnutls, "--alpn="+postgres.ALPN, "--x509cafile", caFile, "-p", port, "localhost")
		waitServer(t, res)
		if !strings.Contains(out, "Handshake was completed") || !strings.Contains(out, hello) || strings.Contains(out, "NOT trusted") {
			t.Errorf("gnutls-cli --alpn=postgresql output:\n%s", out)
		}
	})
	t.Run("other-alpn", func(t *testing.T) {
		addr, caFile, res := dbServer(t, starttls.PostgresDirect, func(c *starttls.Conn) error {
			return fmt.Errorf("session reached the application with ALPN %q", c.ConnectionState().NegotiatedProtocol)
		})
		out := talkUntil(t, "\n---\n", openssl, "s_client", "-connect", addr, "-alpn", "http/1.1", "-CAfile", caFile, "-servername", "localhost")
		select {
		case err := <-res:
			if err == nil || strings.Contains(err.Error(), "reached the application") {
				t.Errorf("server side: %v\ns_client:\n%s", err, out)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("server side did not finish")
		}
	})
}
