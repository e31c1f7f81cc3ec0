package serve

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// Our server against real clients from Debian: each must complete the
// upgrade with verification on and get an answer to a command inside TLS.

type served struct {
	addr, host, port, ca, mailDir string
	events                        *eventLog
}

type eventLog struct {
	mu sync.Mutex
	ev []starttls.Event
}

func (l *eventLog) add(e starttls.Event) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }

func startServed(t *testing.T, p starttls.Protocol) *served {
	t.Helper()
	dir := t.TempDir()
	cfg, ca, err := ThrowawayTLS(dir)
	if err != nil {
		t.Fatal(err)
	}
	mail := filepath.Join(dir, "mail")
	if err := os.Mkdir(mail, 0o755); err != nil {
		t.Fatal(err)
	}
	ev := &eventLog{}
	s, err := Start(context.Background(), Options{Protocol: p, TLSConfig: cfg, MailDir: mail,
		Users: map[string]string{"user": "secret"}, IdleTimeout: 10 * time.Second,
		OnEvent: func(_ net.Addr, e starttls.Event) { ev.add(e) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	host, port, _ := strings.Cut(s.Addr.String(), ":")
	return &served{addr: s.Addr.String(), host: host, port: port, ca: ca, mailDir: mail, events: ev}
}

// talk runs a client, feeds it stdin lines one by one and keeps stdin open
// until the output shows want (or the deadline), so that the client does
// not hang up before the server's answer arrives.
func talk(t *testing.T, want string, stdin []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.WaitDelay = 2 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer in.Close()
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
	}()
	_ = cmd.Wait()
	return out.String()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

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
	// LDAP has no application behind the upgrade in serve: the verified
	// handshake is the whole check.
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
			s := startServed(t, p)
			pt := postTLS[p]
			out := talk(t, pt.want, pt.cmds, bins["openssl"], "s_client", "-starttls", toolProto(p), "-connect", s.addr,
				"-CAfile", s.ca, "-verify_return_error", "-servername", "localhost", "-ign_eof")
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
			s := startServed(t, p)
			pt := postTLS[p]
			// gnutls-cli ends its STARTTLS lines with a bare LF: the server must cope.
			out := talk(t, pt.want, pt.cmds, bins["gnutls-cli"], "--starttls-proto="+toolProto(p), "--x509cafile", s.ca,
				"-p", s.port, "localhost")
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
			s := startServed(t, p)
			cmds, want := postTLSOf(t, p)
			args := []string{"s_client", "-connect", s.addr, "-CAfile", s.ca, "-verify_return_error",
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
			s := startServed(t, p)
			cmds, want := postTLSOf(t, p)
			if want == "Verify return code: 0 (ok)" { // openssl's wording
				want = "Handshake was completed"
			}
			out := talk(t, want, cmds, bins["gnutls-cli"], "--x509cafile", s.ca, "-p", s.port, "localhost")
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

func curlRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	bins := peer.Require(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["curl"], append([]string{"-sS", "--ssl-reqd"}, args...)...).CombinedOutput()
	return string(out), err
}

func TestCurlSMTP(t *testing.T) {
	s := startServed(t, starttls.SMTP)
	msg := filepath.Join(t.TempDir(), "msg.eml")
	body := "Subject: curl over STARTTLS\r\n\r\nHello from curl.\r\n.leading dot\r\n"
	if err := os.WriteFile(msg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := curlRun(t, "--cacert", s.ca, "smtp://"+s.addr, "--mail-from", "a@x.test", "--mail-rcpt", "b@x.test", "-T", msg, "-u", "user:secret")
	if err != nil {
		t.Fatalf("curl smtp: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(s.mailDir, "*.eml"))
	if len(files) != 1 {
		t.Fatalf("%d messages stored, want 1", len(files))
	}
	got, _ := os.ReadFile(files[0])
	if !strings.Contains(string(got), "Hello from curl.") || !strings.Contains(string(got), "\r\n.leading dot") || !strings.Contains(string(got), "X-Envelope-To: <b@x.test>") {
		t.Errorf("stored message:\n%s", got)
	}
	// With the wrong password curl must fail: authentication is real.
	if out, err := curlRun(t, "--cacert", s.ca, "smtp://"+s.addr, "--mail-from", "a@x.test", "--mail-rcpt", "b@x.test", "-T", msg, "-u", "user:wrong"); err == nil {
		t.Errorf("curl with a wrong password succeeded: %s", out)
	}
}

func TestCurlIMAPAndPOP3(t *testing.T) {
	imap := startServed(t, starttls.IMAP)
	out, err := curlRun(t, "--cacert", imap.ca, "imap://"+imap.addr+"/", "-u", "user:secret")
	if err != nil || !strings.Contains(out, "INBOX") {
		t.Errorf("curl imap: %v\n%s", err, out)
	}
	pop := startServed(t, starttls.POP3)
	if out, err := curlRun(t, "--cacert", pop.ca, "pop3://"+pop.addr+"/", "-u", "user:secret"); err != nil {
		t.Errorf("curl pop3: %v\n%s", err, out)
	}
	// An untrusted server certificate is refused by curl: verification is on.
	if out, err := curlRun(t, "imap://"+imap.addr+"/", "-u", "user:secret"); err == nil {
		t.Errorf("curl trusted a throwaway CA it was not given: %s", out)
	}
}

func TestSwaks(t *testing.T) {
	bins := peer.Require(t, "swaks")
	s := startServed(t, starttls.Submission)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["swaks"], "--to", "b@x.test", "--from", "a@x.test", "--server", s.host, "--port", s.port,
		"--tls", "--tls-verify", "--tls-ca-path", s.ca, "--auth", "PLAIN", "--auth-user", "user", "--auth-password", "secret",
		"--header", "Subject: swaks over STARTTLS").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "TLS started") || !strings.Contains(string(out), "250 2.0.0 Ok: queued") {
		t.Errorf("swaks transcript:\n%s", out)
	}
	if files, _ := filepath.Glob(filepath.Join(s.mailDir, "*.eml")); len(files) != 1 {
		t.Errorf("%d messages stored, want 1", len(files))
	}
}

// curl lists an FTP root over AUTH TLS with a TLS-protected passive data
// connection (PROT P), verification on.
func TestCurlFTP(t *testing.T) {
	s := startServed(t, starttls.FTP)
	out, err := curlRun(t, "--cacert", s.ca, "-u", "user:secret", "ftp://"+s.addr+"/", "-v")
	if err != nil {
		t.Fatalf("curl ftp: %v\n%s", err, out)
	}
	for _, want := range []string{"AUTH TLS", "PROT P", "226 Transfer complete"} {
		if !strings.Contains(out, want) {
			t.Errorf("curl ftp output lacks %q:\n%s", want, out)
		}
	}
	if out, err := curlRun(t, "--cacert", s.ca, "-u", "user:wrong", "ftp://"+s.addr+"/"); err == nil {
		t.Errorf("curl ftp with a wrong password succeeded: %s", out)
	}
}

// curl fetches a page from our implicit-TLS HTTP server (https), the
// certificate verified against the throwaway CA; without the CA it refuses.
func TestCurlHTTPS(t *testing.T) {
	s := startServed(t, starttls.HTTPS)
	out, err := curlRun(t, "--cacert", s.ca, "https://localhost:"+s.port+"/interop")
	if err != nil || !strings.Contains(out, "Hello from starttls serve: GET /interop over TLS=true") {
		t.Errorf("curl https: %v\n%s", err, out)
	}
	if out, err := curlRun(t, "https://localhost:"+s.port+"/"); err == nil {
		t.Errorf("curl trusted a throwaway CA it was not given: %s", out)
	}
}

// swaks delivers a message over LMTP (LHLO, STARTTLS, verified).
func TestSwaksLMTP(t *testing.T) {
	bins := peer.Require(t, "swaks")
	s := startServed(t, starttls.LMTP)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["swaks"], "--protocol", "LMTP", "--to", "b@x.test", "--from", "a@x.test",
		"--server", s.host, "--port", s.port, "--tls", "--tls-verify", "--tls-ca-path", s.ca,
		"--header", "Subject: swaks over LMTP").CombinedOutput()
	if err != nil {
		t.Fatalf("swaks lmtp: %v\n%s", err, out)
	}
	for _, want := range []string{"-> LHLO", "TLS started", "~> LHLO"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("swaks transcript lacks %q:\n%s", want, out)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(s.mailDir, "*.eml")); len(files) != 1 {
		t.Errorf("%d messages stored, want 1", len(files))
	}
}

// Python's nntplib upgrades with STARTTLS (RFC 4642), verifying the
// certificate, and asks for capabilities and the group list inside TLS.
func TestPythonNNTP(t *testing.T) {
	bins := peer.Require(t, "python3")
	s := startServed(t, starttls.NNTP)
	script := `
import nntplib, ssl, sys, warnings
warnings.simplefilter("ignore")
ctx = ssl.create_default_context(cafile=sys.argv[3])
s = nntplib.NNTP(sys.argv[1], int(sys.argv[2]), readermode=False, timeout=10)
s.starttls(ctx)
print("tls", s.sock.version())
print("caps", sorted(s.getcapabilities()))
print("list", s.list()[0])
s.quit()
`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["python3"], "-c", script, s.host, s.port, s.ca).CombinedOutput()
	if err != nil {
		t.Fatalf("python nntplib: %v\n%s", err, out)
	}
	for _, want := range []string{"tls TLSv1.3", "'READER'", "list 215"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nntplib output lacks %q:\n%s", want, out)
		}
	}
	// Without the CA the handshake must fail: verification is on.
	out, err = exec.CommandContext(ctx, bins["python3"], "-c", strings.Replace(script, "cafile=sys.argv[3]", "", 1), s.host, s.port, s.ca).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "CERTIFICATE_VERIFY_FAILED") {
		t.Errorf("nntplib trusted a CA it was not given: %v\n%s", err, out)
	}
}

// go-sendxmpp (Debian's, go-xmpp inside) upgrades with <starttls/>,
// verifies the certificate, logs in with SASL PLAIN inside TLS, binds a
// resource and sends a message, which the server stores.
func TestGoSendXMPP(t *testing.T) {
	bins := peer.Require(t, "go-sendxmpp")
	s := startServed(t, starttls.XMPP)
	run := func(pass, ca string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bins["go-sendxmpp"], "-u", "user@localhost", "-p", pass, "-j", s.addr, "--timeout", "5", "b@localhost")
		cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+ca, "HOME="+t.TempDir())
		cmd.Stdin = strings.NewReader("hello over xmpp starttls\n")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("secret", s.ca); err != nil {
		t.Fatalf("go-sendxmpp: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(s.mailDir, "*.xmpp"))
	if len(files) != 1 {
		t.Fatalf("%d messages stored, want 1", len(files))
	}
	if got, _ := os.ReadFile(files[0]); !strings.Contains(string(got), "hello over xmpp starttls") || !strings.Contains(string(got), "X-XMPP-To: b@localhost") {
		t.Errorf("stored message:\n%s", got)
	}
	if out, err := run("wrong", s.ca); err == nil || !strings.Contains(out, "not-authorized") {
		t.Errorf("go-sendxmpp with a wrong password: %v\n%s", err, out)
	}
	// A CA it was not given: the handshake fails before any credentials.
	other, err := os.CreateTemp(t.TempDir(), "empty*.pem")
	if err != nil {
		t.Fatal(err)
	}
	other.Close()
	if out, err := run("secret", other.Name()); err == nil || !strings.Contains(out, "certificate") {
		t.Errorf("go-sendxmpp trusted a CA it was not given: %v\n%s", err, out)
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
		args  func(s *served) []string
		want  string
	}{
		{starttls.SMTPS, func(s *served) []string {
			return []string{"smtps://localhost:" + s.port, "--mail-from", "a@x.test", "--mail-rcpt", "b@x.test", "-T", msg, "-u", "user:secret"}
		}, ""},
		{starttls.IMAPS, func(s *served) []string { return []string{"imaps://localhost:" + s.port + "/", "-u", "user:secret"} }, "INBOX"},
		{starttls.POP3S, func(s *served) []string { return []string{"pop3s://localhost:" + s.port + "/", "-u", "user:secret"} }, ""},
		{starttls.FTPS, func(s *served) []string {
			return []string{"ftps://localhost:" + s.port + "/", "-u", "user:secret", "-v"}
		}, "226 Transfer complete"},
	} {
		t.Run(string(tc.proto), func(t *testing.T) {
			s := startServed(t, tc.proto)
			out, err := curlRun(t, append([]string{"--cacert", s.ca}, tc.args(s)...)...)
			if err != nil || !strings.Contains(out, tc.want) {
				t.Errorf("curl %s: %v\n%s", tc.proto, err, out)
			}
			if tc.proto == starttls.SMTPS {
				if files, _ := filepath.Glob(filepath.Join(s.mailDir, "*.eml")); len(files) != 1 {
					t.Errorf("%d messages stored, want 1", len(files))
				}
			}
			if out, err := curlRun(t, tc.args(s)...); err == nil {
				t.Errorf("curl %s trusted a throwaway CA it was not given: %s", tc.proto, out)
			}
		})
	}
}

// Python's nntplib.NNTP_SSL against our nntps server, verified.
func TestPythonNNTPS(t *testing.T) {
	bins := peer.Require(t, "python3")
	s := startServed(t, starttls.NNTPS)
	script := `
import nntplib, ssl, sys, warnings
warnings.simplefilter("ignore")
ctx = ssl.create_default_context(cafile=sys.argv[3])
s = nntplib.NNTP_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx, readermode=False, timeout=10)
print("tls", s.sock.version())
print("caps", sorted(s.getcapabilities()))
print("list", s.list()[0])
s.quit()
`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bins["python3"], "-c", script, "localhost", s.port, s.ca).CombinedOutput()
	if err != nil {
		t.Fatalf("python nntplib NNTP_SSL: %v\n%s", err, out)
	}
	for _, want := range []string{"tls TLSv1.3", "'READER'", "list 215"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("nntplib output lacks %q:\n%s", want, out)
		}
	}
}

// go-sendxmpp with direct TLS (-t, XEP-0368) against our xmpps server:
// verified, SASL PLAIN inside TLS, the message stored.
func TestGoSendXMPPDirectTLS(t *testing.T) {
	bins := peer.Require(t, "go-sendxmpp")
	s := startServed(t, starttls.XMPPS)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins["go-sendxmpp"], "-t", "-u", "user@localhost", "-p", "secret", "-j", s.addr, "--timeout", "5", "b@localhost")
	cmd.Env = append(os.Environ(), "SSL_CERT_FILE="+s.ca, "HOME="+t.TempDir())
	cmd.Stdin = strings.NewReader("hello over xmpps\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go-sendxmpp -t: %v\n%s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(s.mailDir, "*.xmpp"))
	if len(files) != 1 {
		t.Fatalf("%d messages stored, want 1", len(files))
	}
	if got, _ := os.ReadFile(files[0]); !strings.Contains(string(got), "hello over xmpps") {
		t.Errorf("stored message:\n%s", got)
	}
}

// sieve-connect lists scripts on serve's ManageSieve app over STARTTLS,
// verified: the SASL capability after TLS, NOOP's TAG and the {n+}
// literal of AUTHENTICATE are what it needs; a wrong password fails.
func TestSieveConnect(t *testing.T) {
	bins := peer.Require(t, "sieve-connect")
	s := startServed(t, starttls.Sieve)
	run := func(pass string) (string, error) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		pr, pw, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		defer pr.Close()
		go func() { _, _ = io.WriteString(pw, pass+"\n"); pw.Close() }()
		cmd := exec.CommandContext(ctx, bins["sieve-connect"], "--server", "localhost", "--port", s.port, "--user", "user",
			"--passwordfd", "3", "--tlscafile", s.ca, "--list", "--debug")
		cmd.ExtraFiles = []*os.File{pr}
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		cmd.WaitDelay = 2 * time.Second
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("secret")
	if err != nil {
		t.Fatalf("sieve-connect --list: %v\n%s", err, out)
	}
	for _, want := range []string{">>> STARTTLS", "TLS activated", `"SASL" "PLAIN"`} {
		if !strings.Contains(out, want) {
			t.Errorf("sieve-connect output lacks %q:\n%s", want, out)
		}
	}
	if out, err := run("wrong"); err == nil {
		t.Errorf("sieve-connect logged in with a wrong password:\n%s", out)
	}
}
