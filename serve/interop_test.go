package serve_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/servetest"
)

// Our server against real clients from Debian: each must complete the
// upgrade with verification on and get an answer to a command inside TLS.
// These run the upgrade of many protocols through one client; a test of
// one protocol's application against its clients lives with the
// application, in internal/proto/NAME/serve_interop_test.go.

// talk runs a client, feeds it stdin lines one by one and keeps stdin open
// until the output shows want (or the deadline), so that the client does
// not hang up before the server's answer arrives.
func talk(t *testing.T, want string, stdin []string, name string, args ...string) string {
	t.Helper()
	out, _ := peer.Talk(t, 20*time.Second, func(_ context.Context, in io.Writer, out *peer.Buffer) {
		time.Sleep(300 * time.Millisecond) // let the dialogue and handshake finish
		for _, l := range stdin {
			if _, err := io.WriteString(in, l+"\n"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		for i := 0; i < 100 && !strings.Contains(out.String(), want); i++ {
			time.Sleep(50 * time.Millisecond)
		}
	}, name, args...)
	return out
}

var postTLS = map[starttls.Protocol]struct {
	cmds []string
	want string
}{
	starttls.SMTP:       {[]string{"EHLO client.test", "QUIT"}, "250 AUTH PLAIN LOGIN"},
	starttls.Submission: {[]string{"EHLO client.test", "QUIT"}, "250 AUTH PLAIN LOGIN"},
	starttls.LMTP:       {[]string{"LHLO client.test", "QUIT"}, "250 AUTH PLAIN LOGIN"},
	starttls.IMAP:       {[]string{"x1 CAPABILITY", "x2 LOGOUT"}, "* CAPABILITY IMAP4rev1 AUTH=PLAIN"},
	starttls.POP3:       {[]string{"CAPA", "QUIT"}, "SASL PLAIN"},
	starttls.FTP:        {[]string{"FEAT", "QUIT"}, " EPSV"},
	starttls.NNTP:       {[]string{"CAPABILITIES", "QUIT"}, "LIST ACTIVE NEWSGROUPS"},
	// ManageSieve: the capabilities re-sent inside TLS already list SASL.
	starttls.Sieve: {[]string{"CAPABILITY", "LOGOUT"}, `OK "Capability completed"`},
	starttls.IRC:   {[]string{"PING abc", "QUIT"}, "PONG localhost :abc"},
	// HTTP/1.0 so that the server closes after one answer.
	starttls.HTTP: {[]string{"GET /interop HTTP/1.0", "Host: localhost", ""}, "Hello from starttls serve: GET /interop over TLS=true"},
	// LDAP is BER, which these clients cannot type: the verified handshake
	// is the whole check (internal/proto/ldap tests the application).
	starttls.LDAP: {nil, "Verify return code: 0 (ok)"},
}

// toolProto is the name openssl s_client -starttls and gnutls-cli
// --starttls-proto give a protocol: submission is SMTP to them.
func toolProto(p starttls.Protocol) string {
	if p == starttls.Submission {
		return "smtp"
	}
	return string(p)
}

// implicitServed are our implicit-TLS servers that serve can run, with the
// protocol spoken inside TLS.
var implicitServed = []starttls.Protocol{starttls.SMTPS, starttls.IMAPS, starttls.POP3S, starttls.FTPS,
	starttls.NNTPS, starttls.IRCS, starttls.HTTPS, starttls.LDAPS}

func postTLSOf(t *testing.T, p starttls.Protocol) (cmds []string, want string) {
	t.Helper()
	info, err := starttls.Lookup(p)
	if err != nil {
		t.Fatal(err)
	}
	pt, ok := postTLS[info.Base]
	if !ok {
		t.Fatalf("no post-TLS dialogue for %s (base %s)", p, info.Base)
	}
	return pt.cmds, pt.want
}

func TestOpenSSLClient(t *testing.T) {
	bins := peer.Require(t, "openssl")
	for _, p := range []starttls.Protocol{starttls.SMTP, starttls.Submission, starttls.LMTP, starttls.IMAP, starttls.POP3,
		starttls.FTP, starttls.NNTP, starttls.Sieve, starttls.IRC} {
		t.Run(string(p), func(t *testing.T) {
			s := servetest.Start(t, p)
			pt := postTLS[p]
			out := talk(t, pt.want, pt.cmds, bins["openssl"], "s_client", "-starttls", toolProto(p), "-connect", s.Addr,
				"-CAfile", s.CA, "-verify_return_error", "-servername", "localhost", "-ign_eof")
			for _, want := range []string{"Verify return code: 0 (ok)", pt.want} {
				if !strings.Contains(out, want) {
					t.Errorf("openssl s_client -starttls %s: output lacks %q:\n%s", p, want, out)
				}
			}
		})
	}
}

func TestGnuTLSClient(t *testing.T) {
	bins := peer.Require(t, "gnutls-cli")
	for _, p := range []starttls.Protocol{starttls.SMTP, starttls.Submission, starttls.LMTP, starttls.IMAP, starttls.POP3,
		starttls.FTP, starttls.NNTP, starttls.Sieve} {
		t.Run(string(p), func(t *testing.T) {
			s := servetest.Start(t, p)
			pt := postTLS[p]
			// gnutls-cli ends its STARTTLS lines with a bare LF: the server must cope.
			out := talk(t, pt.want, pt.cmds, bins["gnutls-cli"], "--starttls-proto="+toolProto(p), "--x509cafile", s.CA,
				"-p", s.Port, "localhost")
			for _, want := range []string{"Handshake was completed", pt.want} {
				if !strings.Contains(out, want) {
					t.Errorf("gnutls-cli --starttls-proto=%s: output lacks %q:\n%s", p, want, out)
				}
			}
			if strings.Contains(out, "Certificate is NOT trusted") {
				t.Errorf("gnutls-cli did not trust the chain:\n%s", out)
			}
		})
	}
}

// openssl s_client against our implicit-TLS servers: TLS from the first
// byte, the certificate verified, then the protocol's greeting and a
// command answered inside TLS.
func TestOpenSSLClientImplicit(t *testing.T) {
	bins := peer.Require(t, "openssl")
	for _, p := range implicitServed {
		t.Run(string(p), func(t *testing.T) {
			s := servetest.Start(t, p)
			cmds, want := postTLSOf(t, p)
			args := []string{"s_client", "-connect", s.Addr, "-CAfile", s.CA, "-verify_return_error",
				"-verify_hostname", "localhost", "-servername", "localhost"}
			if len(cmds) > 0 { // else end of input ends the session
				args = append(args, "-ign_eof")
			}
			out := talk(t, want, cmds, bins["openssl"], args...)
			for _, w := range []string{"Verify return code: 0 (ok)", want} {
				if !strings.Contains(out, w) {
					t.Errorf("openssl s_client against %s: output lacks %q:\n%s", p, w, out)
				}
			}
		})
	}
}

// gnutls-cli against the same implicit-TLS servers.
func TestGnuTLSClientImplicit(t *testing.T) {
	bins := peer.Require(t, "gnutls-cli")
	for _, p := range implicitServed {
		t.Run(string(p), func(t *testing.T) {
			s := servetest.Start(t, p)
			cmds, want := postTLSOf(t, p)
			if want == "Verify return code: 0 (ok)" { // openssl's wording
				want = "Handshake was completed"
			}
			out := talk(t, want, cmds, bins["gnutls-cli"], "--x509cafile", s.CA, "-p", s.Port, "localhost")
			for _, w := range []string{"Handshake was completed", want} {
				if !strings.Contains(out, w) {
					t.Errorf("gnutls-cli against %s: output lacks %q:\n%s", p, w, out)
				}
			}
			if strings.Contains(out, "Certificate is NOT trusted") {
				t.Errorf("gnutls-cli did not trust the chain:\n%s", out)
			}
		})
	}
}

// curl against our implicit-TLS servers (smtps, imaps, pop3s, ftps): TLS
// from the first byte, verified against the throwaway CA, then a real
// transaction inside it.
func TestCurlImplicit(t *testing.T) {
	msg := filepath.Join(t.TempDir(), "msg.eml")
	if err := os.WriteFile(msg, []byte("Subject: curl over smtps\r\n\r\nHello over implicit TLS.\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		proto starttls.Protocol
		args  func(s *servetest.Server) []string
		want  string
	}{
		{starttls.SMTPS, func(s *servetest.Server) []string {
			return []string{"smtps://localhost:" + s.Port, "--mail-from", "a@x.test", "--mail-rcpt", "b@x.test", "-T", msg, "-u", "user:secret"}
		}, ""},
		{starttls.IMAPS, func(s *servetest.Server) []string {
			return []string{"imaps://localhost:" + s.Port + "/", "-u", "user:secret"}
		}, "INBOX"},
		{starttls.POP3S, func(s *servetest.Server) []string {
			return []string{"pop3s://localhost:" + s.Port + "/", "-u", "user:secret"}
		}, ""},
		{starttls.FTPS, func(s *servetest.Server) []string {
			return []string{"ftps://localhost:" + s.Port + "/", "-u", "user:secret", "-v"}
		}, "226 Transfer complete"},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			s := servetest.Start(t, tc.proto)
			out, err := servetest.Curl(t, append([]string{"--cacert", s.CA}, tc.args(s)...)...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Errorf("curl %s: %v\n%s", tc.proto, err, out)
			}
			if tc.proto == starttls.SMTPS {
				if files, _ := filepath.Glob(filepath.Join(s.MailDir, "*.eml")); len(files) != 1 {
					t.Errorf("%d messages stored, want 1", len(files))
				}
			}
			if out, err := servetest.Curl(t, tc.args(s)...); err == nil {
				t.Errorf("curl %s trusted a throwaway CA it was not given: %s", tc.proto, out)
			}
		})
	}
}
