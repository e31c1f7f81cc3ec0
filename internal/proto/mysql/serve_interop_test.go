package mysql_test

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"io"
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/proto/mysql"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The MySQL application behind serve's upgrade, against the mariadb
// client (verification on) and against our own client.

func TestMariaDBApp(t *testing.T) {
	bins := peer.Require(t, "mariadb")
	servetest.ClientVersion(t, bins["mariadb"], "--version")
	s := servetest.Start(t, starttls.MySQL)
	mariadb := func(pass, ca, query string) (string, error) {
		return servetest.RunClient(t, nil, bins["mariadb"], "--no-defaults", "--protocol=TCP", "-h", "127.0.0.1", "-P", s.Port,
			"-u", "user", "-p"+pass, "--connect-timeout=5", "--ssl-verify-server-cert", "--ssl-ca="+ca, "-e", query)
	}
	out, err := mariadb("secret", s.CA, "select 1")
	if err != nil {
		t.Fatalf("mariadb: %v\n%s", err, out)
	}
	if strings.Join(strings.Fields(out), " ") != "1 1" {
		t.Errorf("mariadb select 1: %q", out)
	}
	out, err = mariadb("secret", s.CA, "select @@version")
	if err != nil || !strings.Contains(out, "starttls-go") {
		t.Errorf("mariadb select @@version: %v\n%s", err, out)
	}
	out, err = mariadb("secret", s.CA, "show databases")
	if err == nil || !strings.Contains(out, "ERROR 1064") {
		t.Errorf("mariadb with an unsupported query: %v\n%s", err, out)
	}
	out, err = mariadb("wrong", s.CA, "select 1")
	if err == nil || !strings.Contains(out, "Access denied") {
		t.Errorf("mariadb with a wrong password: %v\n%s", err, out)
	}
	// Verification is on: a CA that did not sign the certificate fails.
	out, err = mariadb("secret", servetest.OtherCA(t), "select 1")
	if err == nil {
		t.Errorf("mariadb trusted a CA it was not given:\n%s", out)
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

func cstr(s string) []byte { return append([]byte(s), 0) }

func TestMySQLAppLibraryClient(t *testing.T) {
	s := servetest.Start(t, starttls.MySQL)
	login := func(pass, plugin string) (*starttls.Conn, *bufio.Reader, []byte) {
		c := s.Dial(t, starttls.MySQL)
		br := bufio.NewReader(c)
		args, _ := c.CapabilitiesBefore.Args("AUTH-DATA")
		if len(args) == 0 {
			t.Fatalf("no scramble in %q", c.CapabilitiesBefore)
		}
		scramble, _ := hex.DecodeString(args[0])
		token := mysql.ServeNativePassword(scramble, pass)
		if plugin != mysql.NativePassword {
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
		if _, err := c.Write(mysql.Packet(2, p)); err != nil {
			t.Fatal(err)
		}
		seq, reply := myRead(t, br)
		if len(reply) > 0 && reply[0] == 0xfe {
			// AuthSwitchRequest: plugin name, then the same scramble.
			if !strings.HasPrefix(string(reply[1:]), mysql.NativePassword+"\x00") {
				t.Fatalf("auth switch to %q", reply)
			}
			if _, err := c.Write(mysql.Packet(seq+1, mysql.ServeNativePassword(scramble, pass))); err != nil {
				t.Fatal(err)
			}
			_, reply = myRead(t, br)
		}
		return c, br, reply
	}
	if _, _, r := login("wrong", mysql.NativePassword); len(r) == 0 || r[0] != 0xff {
		t.Errorf("wrong password: %q, want ERR", r)
	}
	if _, _, r := login("secret", "caching_sha2_password"); len(r) == 0 || r[0] != 0 {
		t.Errorf("login through an auth switch: %q, want OK", r)
	}
	c, br, r := login("secret", mysql.NativePassword)
	if len(r) == 0 || r[0] != 0 {
		t.Fatalf("login: %q, want OK", r)
	}
	command := func(cmd byte, arg string) [][]byte {
		if _, err := c.Write(mysql.Packet(0, append([]byte{cmd}, arg...))); err != nil {
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
	c.Write(mysql.Packet(0, []byte{0x01}))
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("after COM_QUIT: %v, want EOF", err)
	}
}
