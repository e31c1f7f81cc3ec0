package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// The proxy between real clients (openssl s_client, curl, swaks) and real
// servers (Postfix, Dovecot) on loopback, verification on everywhere.

// tool runs a client, feeds it stdin lines one at a time (waiting for
// the previous answer to arrive), and returns its output and exit error.
// It never runs longer than 30 s.
func tool(t *testing.T, stdin []string, name string, args ...string) (string, error) {
	t.Helper()
	return peer.Talk(t, 30*time.Second, func(ctx context.Context, in io.Writer, _ *peer.Buffer) {
		time.Sleep(500 * time.Millisecond)
		for _, l := range stdin {
			if _, err := io.WriteString(in, l+"\r\n"); err != nil {
				return
			}
			time.Sleep(300 * time.Millisecond)
		}
		// Keep stdin open until the tool is done or the deadline.
		<-ctx.Done()
	}, name, args...)
}

func mustContain(t *testing.T, what, out string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, out)
		}
	}
}

// afterHandshake returns what s_client -brief printed from the first
// line of the backend (marker) on. (s_client -starttls also prints the last
// line of the proxy's pre-TLS EHLO reply, "250 STARTTLS", after the
// session summary; it is not part of the session inside TLS.)
func afterHandshake(out, marker string) string {
	if i := strings.Index(out, "CONNECTION ESTABLISHED"); i >= 0 {
		out = out[i:]
	}
	if i := strings.Index(out, marker); i >= 0 {
		return out[i:]
	}
	return out
}

func hostPort(addr string) (string, string) {
	i := strings.LastIndexByte(addr, ':')
	return addr[:i], addr[i+1:]
}

func TestInteropPostfix(t *testing.T) {
	bins := peer.Require(t, "openssl", "curl", "swaks", "postcat", "postqueue")
	pf := peer.StartPostfix(t, peer.PostfixOptions{MainCF: []string{
		// The port-25 smtpd speaks plaintext only: the proxy gives it TLS.
		// (The submission port keeps "encrypt" from master.cf: originate's target.)
		"smtpd_tls_security_level = none",
		"smtpd_tls_auth_only = no",
		// Keep what arrives in the queue, to be found there.
		"defer_transports = local smtp relay",
		"local_recipient_maps =",
	}})
	t.Logf("Postfix %s", pf.Version)
	pki := newTestPKI(t)
	m := newCountingMetrics()
	term := terminateListener(t, pki, starttls.SMTP, pf.SMTPAddr)
	impl := terminateListener(t, pki, starttls.SMTPS, pf.SMTPAddr)
	impl.Mode = Implicit
	orig := Listener{Mode: Originate, Protocol: starttls.Submission, Backend: pf.SubmissionAddr,
		ClientTLS: &tls.Config{RootCAs: pf.CA.Pool(), ServerName: "mail.test"}, Hostname: "local.proxy"}
	srv := startProxy(t, Options{Metrics: m}, term, impl, orig)
	termAddr, implAddr, origAddr := srv.Addr(0).String(), srv.Addr(1).String(), srv.Addr(2).String()
	etc := filepath.Join(pf.Dir, "etc")

	t.Run("openssl s_client -starttls smtp", func(t *testing.T) {
		out, err := tool(t, []string{"EHLO client.test", "quit"}, bins["openssl"], "s_client", "-brief",
			"-starttls", "smtp", "-connect", termAddr, "-CAfile", pki.caFile, "-verify_return_error", "-verify_hostname", "localhost")
		if err != nil {
			t.Fatalf("s_client: %v\n%s", err, out)
		}
		post := afterHandshake(out, "250-mail.test")
		mustContain(t, "s_client", out, "Verification: OK", "Protocol version: TLSv1.3")
		mustContain(t, "s_client", post, "250-mail.test", "221 2.0.0 Bye")
		if strings.Contains(post, "STARTTLS") {
			t.Errorf("STARTTLS advertised after TLS:\n%s", post)
		}
	})
	deliver := func(t *testing.T, token string) {
		t.Helper()
		// The mail is in Postfix's queue: find its queue id by the token in
		// the log, and its body with postcat.
		var qid string
		ok := waitFor(10*time.Second, func() bool {
			for _, l := range strings.Split(pf.Log(), "\n") {
				if strings.Contains(l, "message-id=<"+token+"@") {
					f := strings.Fields(l)
					for i, w := range f {
						if strings.HasPrefix(w, "postfix") && i+1 < len(f) {
							qid = strings.TrimSuffix(f[i+1], ":")
						}
					}
					return true
				}
			}
			return false
		})
		if !ok || qid == "" {
			t.Fatalf("message %s not in the Postfix log:\n%s", token, pf.Log())
		}
		out, err := tool(t, nil, bins["postcat"], "-c", etc, "-bh", "-q", qid)
		if err != nil || !strings.Contains(out, token) {
			t.Errorf("postcat %s: %v\n%s", qid, err, out)
		}
	}
	t.Run("curl --ssl-reqd delivers a mail", func(t *testing.T) {
		token := fmt.Sprintf("curl-%d", time.Now().UnixNano())
		msg := filepath.Join(t.TempDir(), "msg")
		os.WriteFile(msg, []byte("From: s@example.org\r\nTo: alice@mail.test\r\nSubject: "+token+"\r\nMessage-ID: <"+token+"@example.org>\r\n\r\nthrough the proxy\r\n"), 0o644)
		out, err := tool(t, nil, bins["curl"], "-sS", "--ssl-reqd", "--cacert", pki.caFile, "smtp://"+termAddr,
			"--mail-from", "s@example.org", "--mail-rcpt", "alice@mail.test", "-T", msg)
		if err != nil {
			t.Fatalf("curl: %v\n%s", err, out)
		}
		deliver(t, token)
	})
	t.Run("swaks --tls delivers a mail", func(t *testing.T) {
		token := fmt.Sprintf("swaks-%d", time.Now().UnixNano())
		host, port := hostPort(termAddr)
		out, err := tool(t, nil, bins["swaks"], "--server", host, "--port", port, "--tls", "--tls-verify", "--tls-ca-path", pki.caFile,
			"--from", "s@example.org", "--to", "alice@mail.test", "--header", "Message-ID: <"+token+"@example.org>", "--body", token)
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		// swaks shows the post-TLS EHLO reply (lines "<~"): no STARTTLS there.
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "<~") && strings.Contains(l, "STARTTLS") {
				t.Errorf("STARTTLS after TLS: %q", l)
			}
		}
		mustContain(t, "swaks", out, "<~  250")
		deliver(t, token)
	})
	t.Run("implicit: openssl s_client and curl smtps", func(t *testing.T) {
		out, err := tool(t, []string{"EHLO client.test", "quit"}, bins["openssl"], "s_client", "-brief",
			"-connect", implAddr, "-CAfile", pki.caFile, "-verify_return_error", "-verify_hostname", "localhost")
		if err != nil {
			t.Fatalf("s_client: %v\n%s", err, out)
		}
		mustContain(t, "s_client", afterHandshake(out, "220 "), "220 mail.test", "250-mail.test", "221 2.0.0 Bye")
		token := fmt.Sprintf("smtps-%d", time.Now().UnixNano())
		msg := filepath.Join(t.TempDir(), "msg")
		os.WriteFile(msg, []byte("Subject: x\r\nMessage-ID: <"+token+"@example.org>\r\n\r\nimplicit\r\n"), 0o644)
		out, err = tool(t, nil, bins["curl"], "-sS", "--cacert", pki.caFile, "smtps://"+implAddr,
			"--mail-from", "s@example.org", "--mail-rcpt", "alice@mail.test", "-T", msg)
		if err != nil {
			t.Fatalf("curl smtps: %v\n%s", err, out)
		}
		deliver(t, token)
	})
	t.Run("originate: plaintext client, STARTTLS to Postfix submission", func(t *testing.T) {
		lc := dialLines(t, origAddr)
		if g := lc.smtpReply(); !strings.HasPrefix(g[0], "220 local.proxy") {
			t.Fatalf("greeting %q", g)
		}
		lc.send("EHLO plain.client\r\n")
		r := strings.Join(lc.smtpReply(), "\n")
		if !strings.Contains(r, "250-mail.test") || strings.Contains(r, "STARTTLS") {
			t.Errorf("EHLO reply through originate:\n%s", r)
		}
		token := fmt.Sprintf("orig-%d", time.Now().UnixNano())
		for _, c := range []string{"MAIL FROM:<s@example.org>", "RCPT TO:<alice@mail.test>", "DATA"} {
			lc.send(c + "\r\n")
			if r := lc.smtpReply(); r[0][0] != '2' && r[0][0] != '3' {
				t.Fatalf("%s: %q", c, r)
			}
		}
		lc.send("Message-ID: <" + token + "@example.org>\r\nSubject: x\r\n\r\nvia originate\r\n.\r\n")
		if r := lc.smtpReply(); !strings.HasPrefix(r[0], "250") {
			t.Fatalf("end of data: %q", r)
		}
		lc.send("QUIT\r\n")
		lc.smtpReply()
		deliver(t, token)
	})
	t.Run("PROXY v2 to Postfix", func(t *testing.T) {
		pp := peer.StartPostfix(t, peer.PostfixOptions{MainCF: []string{
			"smtpd_tls_security_level = none", "smtpd_upstream_proxy_protocol = haproxy"}})
		l := terminateListener(t, pki, starttls.SMTP, pp.SMTPAddr)
		l.ProxyProtocol = true
		ps := startProxy(t, Options{}, l)
		c := dialProxy(t, starttls.SMTP, ps.Addr(0).String(), pki)
		if !c.Capabilities.Has("PIPELINING") || c.Capabilities.Has("STARTTLS") {
			t.Errorf("capabilities through PROXY v2: %q", c.Capabilities)
		}
		io.WriteString(c, "NOOP\r\n")
		if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "250") {
			t.Errorf("NOOP: %q %v\n%s", l, err, pp.Log())
		}
	})
	if n := m.handshakeCount(); n < 5 {
		t.Errorf("%d handshakes counted", n)
	}
}

func TestInteropDovecot(t *testing.T) {
	bins := peer.Require(t, "openssl", "curl")
	// A second listener per protocol that expects PROXY v2 (Dovecot merges
	// the service sections).
	ppIMAP, ppPOP3 := peer.FreePort(t), peer.FreePort(t)
	plain := peer.StartDovecot(t, peer.DovecotOptions{Conf: []string{
		"disable_plaintext_auth = no",
		"haproxy_trusted_networks = 127.0.0.0/8",
		fmt.Sprintf("service imap-login {\n  inet_listener imap_haproxy {\n    port = %d\n    haproxy = yes\n  }\n}", ppIMAP),
		fmt.Sprintf("service pop3-login {\n  inet_listener pop3_haproxy {\n    port = %d\n    haproxy = yes\n  }\n}", ppPOP3),
	}})
	t.Logf("Dovecot %s", plain.Version)
	host, _ := hostPort(plain.IMAPAddr)
	pki := newTestPKI(t)
	imapT := terminateListener(t, pki, starttls.IMAP, plain.IMAPAddr)
	pop3T := terminateListener(t, pki, starttls.POP3, plain.POP3Addr)
	imapI := terminateListener(t, pki, starttls.IMAPS, plain.IMAPAddr)
	imapI.Mode = Implicit
	imapPP := terminateListener(t, pki, starttls.IMAP, fmt.Sprintf("%s:%d", host, ppIMAP))
	imapPP.ProxyProtocol = true
	pop3PP := terminateListener(t, pki, starttls.POP3S, fmt.Sprintf("%s:%d", host, ppPOP3))
	pop3PP.ProxyProtocol = true
	pop3PP.Mode = Implicit
	origIMAP := Listener{Mode: Originate, Protocol: starttls.IMAP, Backend: plain.IMAPAddr,
		ClientTLS: &tls.Config{RootCAs: plain.CA.Pool(), ServerName: "mail.test"}}
	srv := startProxy(t, Options{}, imapT, pop3T, imapI, imapPP, pop3PP, origIMAP)
	addr := func(i int) string { return srv.Addr(i).String() }
	user := plain.User + ":" + plain.Password

	for _, tc := range []struct {
		name, proto, addr string
	}{{"imap", "imap", addr(0)}, {"pop3", "pop3", addr(1)}} {
		t.Run("openssl s_client -starttls "+tc.name, func(t *testing.T) {
			cmds := []string{"a CAPABILITY", "a LOGOUT"}
			if tc.proto == "pop3" {
				cmds = []string{"CAPA", "quit"}
			}
			out, err := tool(t, cmds, bins["openssl"], "s_client", "-brief", "-starttls", tc.proto, "-connect", tc.addr,
				"-CAfile", pki.caFile, "-verify_return_error", "-verify_hostname", "localhost")
			if err != nil {
				t.Fatalf("s_client: %v\n%s", err, out)
			}
			post := afterHandshake(out, "+OK")
			if tc.proto == "imap" {
				post = afterHandshake(out, "* CAPABILITY")
			}
			mustContain(t, "s_client", out, "Verification: OK")
			if strings.Contains(post, "STARTTLS") || strings.Contains(post, "STLS") || strings.Contains(post, "LOGINDISABLED") {
				t.Errorf("upgrade capability advertised after TLS:\n%s", post)
			}
			if tc.proto == "imap" {
				mustContain(t, "s_client", post, "* CAPABILITY IMAP4rev1", "AUTH=PLAIN")
			} else {
				mustContain(t, "s_client", post, "SASL PLAIN", "USER")
			}
		})
	}
	t.Run("curl --ssl-reqd imap lists the mailbox", func(t *testing.T) {
		out, err := tool(t, nil, bins["curl"], "-sS", "--ssl-reqd", "--cacert", pki.caFile, "-u", user, "imap://"+addr(0)+"/")
		if err != nil || !strings.Contains(out, "INBOX") {
			t.Errorf("curl imap: %v\n%s\n%s", err, out, plain.Log())
		}
	})
	t.Run("curl --ssl-reqd pop3", func(t *testing.T) {
		out, err := tool(t, nil, bins["curl"], "-sS", "-v", "--ssl-reqd", "--cacert", pki.caFile, "-u", user, "pop3://"+addr(1)+"/")
		if err != nil || !strings.Contains(out, "+OK Logged in") {
			t.Errorf("curl pop3: %v\n%s", err, out)
		}
	})
	t.Run("implicit: curl imaps and s_client", func(t *testing.T) {
		out, err := tool(t, nil, bins["curl"], "-sS", "--cacert", pki.caFile, "-u", user, "imaps://"+addr(2)+"/")
		if err != nil || !strings.Contains(out, "INBOX") {
			t.Errorf("curl imaps: %v\n%s", err, out)
		}
		out, err = tool(t, []string{"a CAPABILITY", "a LOGOUT"}, bins["openssl"], "s_client", "-brief", "-connect", addr(2),
			"-CAfile", pki.caFile, "-verify_return_error", "-verify_hostname", "localhost")
		if err != nil {
			t.Fatalf("s_client: %v\n%s", err, out)
		}
		post := afterHandshake(out, "* OK")
		mustContain(t, "s_client", post, "* OK", "Dovecot", "* CAPABILITY")
		if strings.Contains(post, "STARTTLS") || strings.Contains(post, "LOGINDISABLED") {
			t.Errorf("upgrade capability advertised:\n%s", post)
		}
	})
	t.Run("PROXY v2 to Dovecot", func(t *testing.T) {
		out, err := tool(t, nil, bins["curl"], "-sS", "--ssl-reqd", "--cacert", pki.caFile, "-u", user, "imap://"+addr(3)+"/")
		if err != nil || !strings.Contains(out, "INBOX") {
			t.Errorf("curl imap via PROXY v2: %v\n%s\n%s", err, out, plain.Log())
		}
		out, err = tool(t, nil, bins["curl"], "-sS", "-v", "--cacert", pki.caFile, "-u", user, "pop3s://"+addr(4)+"/")
		if err != nil || !strings.Contains(out, "+OK Logged in") {
			t.Errorf("curl pop3s via PROXY v2: %v\n%s", err, out)
		}
		// Dovecot logged the session as secured by TLS (the PROXY SSL TLV).
		if !waitFor(3*time.Second, func() bool { return strings.Contains(plain.Log(), "secured") }) {
			t.Errorf("Dovecot log does not show a secured session:\n%s", plain.Log())
		}
	})
	t.Run("originate: plaintext client, STARTTLS to Dovecot", func(t *testing.T) {
		lc := dialLines(t, addr(5))
		if g := lc.line(); !strings.HasPrefix(g, "* OK") {
			t.Fatalf("greeting %q", g)
		}
		lc.send("a CAPABILITY\r\n")
		caps := lc.line()
		if !strings.HasPrefix(caps, "* CAPABILITY") || strings.Contains(caps, "STARTTLS") || strings.Contains(caps, "LOGINDISABLED") {
			t.Errorf("capabilities %q", caps)
		}
		lc.line()
		// tagged reads the response lines up to the tagged one.
		tagged := func(tag string) []string {
			var out []string
			for i := 0; i < 50; i++ {
				l := lc.line()
				out = append(out, l)
				if strings.HasPrefix(l, tag+" ") {
					return out
				}
			}
			t.Fatalf("no tagged response: %q", out)
			return nil
		}
		lc.send("b LOGIN " + plain.User + " " + plain.Password + "\r\n")
		if r := tagged("b"); !strings.HasPrefix(r[len(r)-1], "b OK") {
			t.Fatalf("login: %q", r)
		}
		lc.send("c LIST \"\" *\r\n")
		if r := tagged("c"); !strings.Contains(strings.Join(r, "\n"), "INBOX") {
			t.Errorf("LIST: %q", r)
		}
	})
}

// Terminate in front of a PostgreSQL that accepts only plaintext from the
// proxy: psql with sslmode=verify-full runs a query through it.
func TestInteropPostgresTerminate(t *testing.T) {
	bins := peer.Require(t, "psql")
	pg := peer.StartPostgres(t, peer.PostgresOptions{AllowPlaintext: true})
	t.Logf("PostgreSQL %s", pg.Version)
	pki := newTestPKI(t)
	srv := startProxy(t, Options{}, terminateListener(t, pki, starttls.Postgres, pg.Addr))
	host, port := hostPort(srv.Addr(0).String())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := fmt.Sprintf("host=%s port=%s sslmode=verify-full sslrootcert=%s dbname=postgres user=%s connect_timeout=10",
		host, port, pki.caFile, pg.User)
	out, err := exec.CommandContext(ctx, bins["psql"], conn, "-XAtc", "SELECT 'through-the-proxy', ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").CombinedOutput()
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	// The query ran, and the backend saw a plaintext session: TLS ended at the proxy.
	if got := strings.TrimSpace(string(out)); got != "through-the-proxy|f" {
		t.Errorf("psql printed %q", got)
	}
	// Without TLS, psql is refused by the proxy's Required policy.
	plain := fmt.Sprintf("host=%s port=%s sslmode=disable dbname=postgres user=%s connect_timeout=10", host, port, pg.User)
	if out, err := exec.CommandContext(ctx, bins["psql"], plain, "-XAtc", "SELECT 1").CombinedOutput(); err == nil {
		t.Errorf("plaintext psql got through the proxy: %s", out)
	}
}
