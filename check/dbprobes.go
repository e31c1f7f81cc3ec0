package check

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/starttls-go/starttls/internal/proto/mysql"
)

// recordingConn keeps the first bytes the server sent, so that a failed
// dialogue or handshake can still be judged on what the server said.
type recordingConn struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

const recordLimit = 8192

func (r *recordingConn) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	if room := recordLimit - len(r.got); room > 0 {
		r.got = append(r.got, p[:min(n, room)]...)
	}
	r.mu.Unlock()
	return n, err
}

func (r *recordingConn) received() []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]byte(nil), r.got...)
}

// recordingDial wraps the probe's TCP connection in a recordingConn.
func (c *run) recordingDial(rec **recordingConn) func(ctx context.Context, network, address string) (net.Conn, error) {
	return func(ctx context.Context, _, _ string) (net.Conn, error) {
		conn, err := c.dialTCP(ctx)
		if err != nil {
			return nil, err
		}
		*rec = &recordingConn{Conn: conn}
		return *rec, nil
	}
}

// mysqlPlaintextAnswer looks at what a MySQL server sent after its
// initial handshake packet when the client's TLS handshake failed. TLS
// records (an alert) and nothing at all are a refusal; an ERR packet is a
// refusal in plaintext; any other packet (OK, an authentication switch)
// means the server went on in plaintext with the login pipelined behind
// the SSLRequest. It returns a description and whether it was executed.
func mysqlPlaintextAnswer(got []byte) (string, bool) {
	if len(got) < 4 {
		return "", false
	}
	n := int(got[0]) | int(got[1])<<8 | int(got[2])<<16
	if 4+n > len(got) {
		return "", false
	}
	rest := got[4+n:]
	switch {
	case len(rest) == 0:
		return "", false
	case hasTLSRecord(rest):
		return "a TLS record", false
	case len(rest) > 4 && rest[4] == 0xff:
		m := int(rest[0]) | int(rest[1])<<8 | int(rest[2])<<16
		if e, err := mysql.ParseError(rest[4:min(len(rest), 4+m)]); err == nil {
			return "in plaintext: " + e.String(), false
		}
		return "an ERR packet in plaintext", false
	}
	return "in plaintext: " + mysqlDescribe(rest), true
}

// mysqlDescribe names the server packet at the start of b, for evidence.
func mysqlDescribe(b []byte) string {
	if len(b) < 5 {
		return fmt.Sprintf("% x", b)
	}
	kind := map[byte]string{0x00: "OK packet", 0xfe: "authentication switch request", 0x01: "authentication data", 0xff: "ERR packet"}[b[4]]
	if kind == "" {
		kind = "a packet"
	}
	if e, err := mysql.ParseError(b[4:min(len(b), 4+int(b[0])|int(b[1])<<8|int(b[2])<<16)]); err == nil {
		kind = e.String()
	}
	return fmt.Sprintf("%s (sequence id %d; %d bytes: % x)", kind, b[3], len(b), b[:min(len(b), 24)])
}

// pgGSSENCRequest is the 8-byte GSSENCRequest packet.
var pgGSSENCRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}

// pgSSLRequest is the 8-byte SSLRequest packet.
var pgSSLRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// postgresAfterGSS repeats the PostgreSQL injection probe on the path a
// libpq client with gssencmode=prefer takes: GSSENCRequest, 'N', then
// SSLRequest with a StartupMessage in the same write. The server reaches
// its SSL code a second time, with the GSS state set, and must still
// refuse the plaintext it buffered (security catalogue §(a)2). It
// returns the verdict and, when the startup message was executed, the
// evidence.
func (c *run) postgresAfterGSS(ctx context.Context) (verdict, evidence string) {
	ctx, cancel := context.WithTimeout(ctx, 3*c.o.Timeout)
	defer cancel()
	raw, err := c.dialTCP(ctx)
	if err != nil {
		return "error: " + err.Error(), ""
	}
	defer raw.Close()
	_ = raw.SetDeadline(time.Now().Add(c.o.Timeout))
	one := func() (byte, error) {
		var b [1]byte
		_, err := io.ReadFull(raw, b[:])
		return b[0], err
	}
	if _, err := raw.Write(pgGSSENCRequest); err != nil {
		return "error: " + err.Error(), ""
	}
	switch b, err := one(); {
	case err != nil:
		return "n/a (GSSENCRequest: " + err.Error() + ")", ""
	case b == 'G':
		return "n/a (the server offers GSS encryption)", ""
	case b != 'N':
		// Servers before PostgreSQL 12 do not know GSSENCRequest.
		return fmt.Sprintf("n/a (GSSENCRequest answered 0x%02x)", b), ""
	}
	probe := injectionProbes["postgres"]
	if _, err := raw.Write(append(append([]byte{}, pgSSLRequest...), probe...)); err != nil {
		return "error: " + err.Error(), ""
	}
	switch b, err := one(); {
	case err != nil:
		return "pass (" + err.Error() + " after SSLRequest)", ""
	case b != 'S':
		return fmt.Sprintf("pass (SSLRequest answered 0x%02x)", b), ""
	}
	tc := tls.Client(raw, c.clientConfig().TLSConfig)
	if err := tc.HandshakeContext(ctx); err != nil {
		return "pass (handshake: " + err.Error() + ")", ""
	}
	_ = tc.SetReadDeadline(time.Now().Add(min(injectionWait, c.o.Timeout)))
	buf := make([]byte, 4096)
	n, _ := io.ReadAtLeast(tc, buf, 1)
	switch {
	case n == 0:
		return "pass", ""
	case !binaryProbes["postgres"](buf[:n]):
		return "pass (refused inside TLS: " + printable(buf[:min(n, 120)]) + ")", ""
	}
	return "fail", fmt.Sprintf("after GSSENCRequest answered 'N', sent SSLRequest and a StartupMessage in one write; inside TLS the server answered %d bytes: %s",
		n, printable(buf[:min(n, 120)]))
}

// hasTLSRecord reports whether b starts like a TLS record.
func hasTLSRecord(b []byte) bool {
	return len(b) >= 2 && (b[0] == 0x15 || b[0] == 0x16) && b[1] == 3
}

// mysqlLogin sends, before TLS, the HandshakeResponse a client that never
// asked for TLS would send: the throwaway user and an empty auth response
// (no password at all). A server that insists on TLS before looking at
// the credentials answers an ERR about insecure transport (MySQL 3159,
// MariaDB 4151); an OK means a plaintext session was opened (an anonymous
// account) (security catalogue §(a)3). "Access denied" does not tell:
// MariaDB 10.11 checks the credentials before require_secure_transport,
// so it gives a throwaway user 1045 either way.
func mysqlLogin(p *plainConn) loginOutcome {
	out := loginOutcome{sent: fmt.Sprintf("a HandshakeResponse for %q with no password", probeUser)}
	packet := func() ([]byte, error) {
		_ = p.conn.SetReadDeadline(time.Now().Add(p.timeout))
		var hdr [4]byte
		if _, err := io.ReadFull(p.br, hdr[:]); err != nil {
			return nil, err
		}
		n := int(hdr[0]) | int(hdr[1])<<8 | int(hdr[2])<<16
		if n > 1<<16 {
			return nil, fmt.Errorf("a packet of %d bytes", n)
		}
		b := make([]byte, 4+n)
		copy(b, hdr[:])
		_, err := io.ReadFull(p.br, b[4:])
		return b, err
	}
	g, err := packet()
	if err != nil {
		out.note = "initial handshake: " + err.Error()
		return out
	}
	h, err := mysql.ParseHandshake(g[4:])
	if err != nil {
		out.note = err.Error()
		return out
	}
	caps := mysql.ClientProtocol41 | mysql.ClientSecureConnection |
		h.Capabilities&mysql.ClientPluginAuth
	resp := binary.LittleEndian.AppendUint32(nil, caps)
	resp = binary.LittleEndian.AppendUint32(resp, 1<<24)
	resp = append(resp, 45)
	resp = append(resp, make([]byte, 23)...)
	resp = append(resp, probeUser+"\x00"...)
	resp = append(resp, 0)
	if caps&mysql.ClientPluginAuth != 0 {
		resp = append(resp, "mysql_native_password\x00"...)
	}
	n := len(resp)
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	if _, err := p.conn.Write(append([]byte{byte(n), byte(n >> 8), byte(n >> 16), 1}, resp...)); err != nil {
		out.note = err.Error()
		return out
	}
	a, err := packet()
	if err != nil {
		out.note = "answer: " + err.Error()
		return out
	}
	out.reply = mysqlDescribe(a)
	out.result = judgeMySQLLogin(a[4:])
	if out.result == loginUndecided {
		out.note = fmt.Sprintf("%s answered %s", out.sent, out.reply)
	}
	return out
}

// judgeMySQLLogin classifies the answer to a plaintext HandshakeResponse.
func judgeMySQLLogin(p []byte) int {
	if len(p) == 0 {
		return loginUndecided
	}
	switch p[0] {
	case 0x00: // OK: logged in without TLS
		return loginProcessed
	case 0xff:
	default:
		// An authentication switch or more authentication data: the
		// transport may still be refused after the exchange.
		return loginUndecided
	}
	e, err := mysql.ParseError(p)
	if err == nil && (e.Code == 3159 || e.Code == 4151 || strings.Contains(strings.ToLower(e.Message), "insecure transport")) {
		return loginRefused
	}
	return loginUndecided
}

// postgresLogin sends a StartupMessage without SSLRequest for the
// throwaway user. pg_hba is applied before any authentication, so a
// server that requires TLS refuses at once ("no pg_hba.conf entry ... no
// encryption", "SSL off" before PostgreSQL 12); an authentication
// request ('R': a password, SCRAM, or OK under trust) means it takes
// logins in plaintext, and so does "role ... does not exist", which comes
// only after a non-TLS pg_hba line matched.
func postgresLogin(p *plainConn) loginOutcome {
	out := loginOutcome{sent: fmt.Sprintf("a StartupMessage for %q without SSLRequest", probeUser)}
	body := "\x00\x03\x00\x00user\x00" + probeUser + "\x00database\x00postgres\x00\x00"
	n := len(body) + 4
	_ = p.conn.SetWriteDeadline(time.Now().Add(p.timeout))
	if _, err := p.conn.Write(append([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}, body...)); err != nil {
		out.note = err.Error()
		return out
	}
	_ = p.conn.SetReadDeadline(time.Now().Add(p.timeout))
	var hdr [5]byte
	if _, err := io.ReadFull(p.br, hdr[:]); err != nil {
		out.note = "answer: " + err.Error()
		return out
	}
	m := int(binary.BigEndian.Uint32(hdr[1:]))
	if m < 4 || m > 8192 {
		out.note = fmt.Sprintf("a message of %d bytes", m)
		return out
	}
	msg := make([]byte, m-4)
	if _, err := io.ReadFull(p.br, msg); err != nil {
		out.note = "answer: " + err.Error()
		return out
	}
	switch hdr[0] {
	case 'R':
		out.result = loginProcessed
		out.reply = "R (authentication request)"
		if len(msg) >= 4 {
			kind := binary.BigEndian.Uint32(msg)
			name := map[uint32]string{0: ": AuthenticationOk, logged in", 3: ": cleartext password", 5: ": MD5 password", 10: ": SASL"}[kind]
			out.reply = fmt.Sprintf("R (authentication request, type %d%s)", kind, name)
		}
		return out
	case 'E':
		fields := map[byte]string{}
		for _, f := range bytes.Split(msg, []byte{0}) {
			if len(f) > 1 {
				fields[f[0]] = printable(f[1:])
			}
		}
		out.reply = fmt.Sprintf("E %s %s: %s", fields['S'], fields['C'], fields['M'])
		lower := strings.ToLower(fields['M'])
		switch {
		case strings.Contains(lower, "no encryption") || strings.Contains(lower, "ssl off") || strings.Contains(lower, "ssl required"):
			out.result = loginRefused
		case fields['C'] == "28000" && strings.HasPrefix(lower, "role ") && strings.Contains(lower, "does not exist"):
			out.result = loginProcessed
		default:
			out.note = fmt.Sprintf("%s answered %s", out.sent, out.reply)
		}
		return out
	}
	out.reply = fmt.Sprintf("%q", hdr[0])
	out.note = fmt.Sprintf("%s answered message type %q", out.sent, hdr[0])
	return out
}
