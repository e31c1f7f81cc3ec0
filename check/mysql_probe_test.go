package check

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/internal/proto/mysql"
)

// MySQL server behaviours towards a HandshakeResponse sent in plaintext
// between the SSLRequest and the ClientHello.
const (
	mysqlDiscard   = iota // drop it, start TLS, wait for the login inside TLS (safe)
	mysqlBuffered         // keep it in the plaintext buffer and answer it inside TLS (CVE-2011-0411 shape)
	mysqlPlaintext        // answer it in plaintext and never start TLS
)

// fakeBufConn reads through the plaintext reader, so that whatever it
// buffered of the ClientHello reaches the TLS handshake.
type fakeBufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c *fakeBufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// fakeMySQLHandshake is a protocol-10 initial handshake offering CLIENT_SSL.
func fakeMySQLHandshake() []byte {
	caps := mysql.ClientLongPassword | mysql.ClientProtocol41 | mysql.ClientSSL |
		mysql.ClientSecureConnection | mysql.ClientPluginAuth
	p := append([]byte{10}, "5.7.0-fake\x00"...)
	p = binary.LittleEndian.AppendUint32(p, 7)
	p = append(p, "abcdefgh"...)
	p = append(p, 0)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps))
	p = append(p, 45)
	p = binary.LittleEndian.AppendUint16(p, 2)
	p = binary.LittleEndian.AppendUint16(p, uint16(caps>>16))
	p = append(p, 21)
	p = append(p, make([]byte, 10)...)
	p = append(p, "ijklmnopqrst\x00"...)
	p = append(p, "mysql_native_password\x00"...)
	n := len(p)
	return append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 0}, p...)
}

func fakeMySQL(t *testing.T, cfg *tls.Config, mode int) string {
	t.Helper()
	ok := []byte{7, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0} // OK packet, sequence id 3: logged in
	packet := func(br *bufio.Reader) []byte {
		hdr := make([]byte, 4)
		if _, err := io.ReadFull(br, hdr); err != nil {
			return nil
		}
		body := make([]byte, int(hdr[0])|int(hdr[1])<<8|int(hdr[2])<<16)
		if _, err := io.ReadFull(br, body); err != nil {
			return nil
		}
		return append(hdr, body...)
	}
	return loopback.Serve(t, 10*time.Second, func(c net.Conn) {
		if _, err := c.Write(fakeMySQLHandshake()); err != nil {
			return
		}
		br := bufio.NewReader(c)
		switch req := packet(br); {
		case len(req) > 36 && req[3] == 1 && req[4+1]&0x08 == 0:
			// A plaintext login: an anonymous account lets anyone in.
			_, _ = c.Write([]byte{7, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0})
			time.Sleep(100 * time.Millisecond)
			return
		case len(req) != 36:
			return
		}
		var pending []byte
		if b, err := br.Peek(1); err == nil && b[0] != 0x16 {
			pending = packet(br)
		}
		if pending != nil && mode == mysqlPlaintext {
			_, _ = c.Write(ok)
			time.Sleep(100 * time.Millisecond)
			return
		}
		tc := tls.Server(&fakeBufConn{Conn: c, r: br}, cfg)
		if tc.Handshake() != nil {
			return
		}
		if pending != nil && mode == mysqlBuffered {
			_, _ = tc.Write(ok)
		}
		_, _ = io.Copy(io.Discard, tc)
	})
}

// TestMySQLInjection: a server that answers the HandshakeResponse sent in
// plaintext behind the SSLRequest, inside TLS or in plaintext, executed
// it; one that drops it, and the library's server half, which closes, did
// not.
func TestMySQLInjection(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	quick := func(o *Options) { o.Depth = Quick }
	for _, tc := range []struct {
		name     string
		addr     func() string
		vuln     bool
		evidence string
	}{
		{"answered inside TLS", func() string { return fakeMySQL(t, pki.server(), mysqlBuffered) }, true, "inside TLS"},
		{"answered in plaintext", func() string { return fakeMySQL(t, pki.server(), mysqlPlaintext) }, true, "in plaintext"},
		{"dropped", func() string { return fakeMySQL(t, pki.server(), mysqlDiscard) }, false, ""},
		{"library server half", func() string {
			return correctServer(t, starttls.MySQL, starttls.ServerConfig{TLSConfig: pki.server()})
		}, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkAddr(t, starttls.MySQL, tc.addr(), pki.ca.Pool(), quick)
			if r.Status != starttls.StatusSuccess {
				t.Fatalf("status %s: %s", r.Status, r.Error)
			}
			requireFinding(t, r, "command-injection", tc.vuln)
			v := r.StartTLS.Probes["command-injection"]
			if tc.vuln != (v == "fail") || !tc.vuln && !strings.HasPrefix(v, "pass") {
				t.Errorf("verdict %q", v)
			}
			for _, f := range r.Findings {
				if f.ID == "command-injection" && (!strings.Contains(f.Evidence, tc.evidence) || !strings.Contains(f.Evidence, "SSLRequest")) {
					t.Errorf("evidence %q lacks %q", f.Evidence, tc.evidence)
				}
			}
			t.Logf("verdict %q; findings %v", v, ids(r))
			for _, f := range r.Findings {
				t.Logf("%s: %s", f.ID, f.Evidence)
			}
		})
	}
}

// TestMySQLPlaintextLogin: a plaintext HandshakeResponse answered OK opened
// a session without TLS (plaintext-login); the library's server half
// refuses it for insecure transport.
func TestMySQLPlaintextLogin(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, tc := range []struct {
		name, addr, want, reply string
	}{
		{"anonymous login", fakeMySQL(t, pki.server(), mysqlDiscard), "fail", "OK packet (sequence id 2"},
		{"library server half", correctServer(t, starttls.MySQL, starttls.ServerConfig{TLSConfig: pki.server()}), "pass", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkAddr(t, starttls.MySQL, tc.addr, pki.ca.Pool())
			if v := r.StartTLS.Probes["plaintext-login"]; v != tc.want {
				t.Errorf("plaintext-login probe %q, want %q", v, tc.want)
			}
			requireFinding(t, r, "plaintext-login", tc.want == "fail")
			for _, f := range r.Findings {
				if f.ID == "plaintext-login" && (f.Severity != High || !strings.Contains(f.Evidence, tc.reply)) {
					t.Errorf("%+v", f)
				}
			}
		})
	}
}
