package check

import (
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
)

// fakePostgres answers SSLRequest with 'S' and then, inside TLS, either
// processes a startup message the client pipelined in plaintext (the
// CVE-2021-23214 flaw: AuthenticationOk) or refuses it as PostgreSQL does
// since the fix (ErrorResponse 08P01).
func fakePostgres(t *testing.T, cfg *tls.Config, vulnerable bool) string {
	t.Helper()
	return fakePostgresGSS(t, cfg, vulnerable, vulnerable)
}

// fakePostgresGSS also answers GSSENCRequest with 'N', as a server built
// without GSSAPI does; vulnAfterGSS is the flaw on that path alone.
func fakePostgresGSS(t *testing.T, cfg *tls.Config, vulnerable, vulnAfterGSS bool) string {
	t.Helper()
	return loopback.Serve(t, 10*time.Second, func(c net.Conn) {
		req := make([]byte, 8)
		if _, err := io.ReadFull(c, req); err != nil {
			return
		}
		if binary.BigEndian.Uint32(req[4:]) == 3<<16 {
			// A plaintext StartupMessage: asked for a password, in
			// the clear, as a "host ... password" pg_hba line does.
			rest := make([]byte, int(binary.BigEndian.Uint32(req))-8)
			if _, err := io.ReadFull(c, rest); err == nil {
				c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
			}
			return
		}
		vuln := vulnerable
		if string(req) == string(pgGSSENCRequest) {
			vuln = vulnAfterGSS
			if _, err := c.Write([]byte{'N'}); err != nil {
				return
			}
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
		}
		// Whatever followed SSLRequest in the same segment.
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		extra := make([]byte, 512)
		n, _ := c.Read(extra)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte{'S'}); err != nil {
			return
		}
		tc := tls.Server(c, cfg)
		if tc.Handshake() != nil || n == 0 {
			if tc != nil {
				io.Copy(io.Discard, tc)
			}
			return
		}
		if vuln {
			tc.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 0})
		} else {
			msg := "SFATAL\x00C08P01\x00Mreceived unencrypted data after SSL request\x00\x00"
			l := len(msg) + 4
			tc.Write(append([]byte{'E', byte(l >> 24), byte(l >> 16), byte(l >> 8), byte(l)}, msg...))
		}
		io.Copy(io.Discard, tc)
	})
}

// The binary injection probe tells a server that executes the pipelined
// startup message from one that notices it and refuses inside TLS.
func TestBinaryInjectionProbePostgres(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, vulnerable := range []bool{true, false} {
		addr := fakePostgres(t, pki.server(), vulnerable)
		r := checkAddr(t, starttls.Postgres, addr, pki.ca.Pool(), func(o *Options) { o.Depth = Quick })
		verdict := r.StartTLS.Probes["command-injection"]
		if vulnerable {
			requireFinding(t, r, "command-injection", true)
		} else {
			requireFinding(t, r, "command-injection", false)
			if !strings.Contains(verdict, "refused inside TLS") || !strings.Contains(verdict, "received unencrypted data") {
				t.Errorf("verdict %q", verdict)
			}
		}
	}
}

// The GSSENCRequest path of the PostgreSQL probe: a server that refuses
// plaintext after a plain SSLRequest but executes it after GSSENCRequest
// was answered 'N' is caught; the library's server half and a server safe
// on both paths are not.
func TestPostgresInjectionAfterGSS(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	quick := func(o *Options) { o.Depth = Quick }
	t.Run("vulnerable after GSS only", func(t *testing.T) {
		r := checkAddr(t, starttls.Postgres, fakePostgresGSS(t, pki.server(), false, true), pki.ca.Pool(), quick)
		requireFinding(t, r, "command-injection", true)
		if v := r.StartTLS.Probes["command-injection"]; v != "fail" {
			t.Errorf("verdict %q", v)
		}
		for _, f := range r.Findings {
			if f.ID == "command-injection" && !strings.Contains(f.Evidence, "GSSENCRequest") {
				t.Errorf("evidence %q", f.Evidence)
			}
		}
	})
	t.Run("safe fake", func(t *testing.T) {
		r := checkAddr(t, starttls.Postgres, fakePostgresGSS(t, pki.server(), false, false), pki.ca.Pool(), quick)
		requireFinding(t, r, "command-injection", false)
		if v := r.StartTLS.Probes["command-injection"]; !strings.Contains(v, "after GSSENCRequest: pass (refused inside TLS") {
			t.Errorf("verdict %q", v)
		}
	})
	t.Run("library server half", func(t *testing.T) {
		addr := correctServer(t, starttls.Postgres, starttls.ServerConfig{TLSConfig: pki.server()})
		r := checkAddr(t, starttls.Postgres, addr, pki.ca.Pool(), quick)
		requireFinding(t, r, "command-injection", false)
		if v := r.StartTLS.Probes["command-injection"]; !strings.HasPrefix(v, "pass") || !strings.Contains(v, "after GSSENCRequest: pass") {
			t.Errorf("verdict %q", v)
		}
		if r.Status != starttls.StatusSuccess {
			t.Errorf("status %s: %s", r.Status, r.Error)
		}
		t.Logf("verdict %q", r.StartTLS.Probes["command-injection"])
	})
}

// TestPostgresPlaintextLogin: a StartupMessage without SSLRequest answered
// with a password request is plaintext-login; the library's server half
// refuses it ("SSL required").
func TestPostgresPlaintextLogin(t *testing.T) {
	pki := newPKI(t, certs.LeafOptions{})
	for _, tc := range []struct {
		name, addr, want string
	}{
		{"asks for a password", fakePostgres(t, pki.server(), false), "fail"},
		{"library server half", correctServer(t, starttls.Postgres, starttls.ServerConfig{TLSConfig: pki.server()}), "pass"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := checkAddr(t, starttls.Postgres, tc.addr, pki.ca.Pool())
			if v := r.StartTLS.Probes["plaintext-login"]; v != tc.want {
				t.Errorf("plaintext-login probe %q, want %q", v, tc.want)
			}
			requireFinding(t, r, "plaintext-login", tc.want == "fail")
			for _, f := range r.Findings {
				if f.ID == "plaintext-login" && !strings.Contains(f.Evidence, "authentication request, type 3") {
					t.Errorf("%+v", f)
				}
			}
		})
	}
}
