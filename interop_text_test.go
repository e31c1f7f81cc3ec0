package starttls_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
)

// Our client against vsftpd with AUTH TLS, verification on: FEAT lists
// AUTH TLS before TLS, PBSZ/PROT are accepted inside it, and a login
// inside TLS gets the real server's answer.
func TestInteropVSFTPD(t *testing.T) {
	v := peer.StartVSFTPD(t)
	t.Logf("vsftpd %s", v.Version)
	c := dialPeer(t, starttls.FTP, v.Addr, v.PKI)
	auth, _ := c.CapabilitiesBefore.Args("AUTH")
	if !strings.Contains(strings.Join(auth, " "), "TLS") {
		t.Errorf("pre-TLS FEAT: %q", c.CapabilitiesBefore)
	}
	if !c.Capabilities.Has("PROT") {
		t.Errorf("post-TLS FEAT: %q", c.Capabilities)
	}
	// A user that does not exist: vsftpd asks for the password, then refuses.
	if _, err := c.Write([]byte("USER nosuchuser\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "331") {
		t.Errorf("USER inside TLS: %q, %v", l, err)
	}
}

// Our client against Dovecot's managesieved: the capability greeting lists
// STARTTLS, and the capabilities re-sent inside TLS list SASL.
func TestInteropManageSieve(t *testing.T) {
	dc := peer.StartDovecot(t, peer.DovecotOptions{Sieve: true})
	c := dialPeer(t, starttls.Sieve, dc.SieveAddr, dc.PKI)
	if !c.CapabilitiesBefore.Has("STARTTLS") {
		t.Errorf("pre-TLS capabilities: %q", c.CapabilitiesBefore)
	}
	if args, _ := c.Capabilities.Args("SASL"); len(args) == 0 || c.Capabilities.Has("STARTTLS") {
		t.Errorf("post-TLS capabilities: %q", c.Capabilities)
	}
	if err := c.Quit(t.Context()); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// Our client against INN's nnrpd: CAPABILITIES lists STARTTLS before TLS,
// 382 is the go-ahead, and the capabilities asked inside TLS come from the
// real server.
func TestInteropINN(t *testing.T) {
	n := peer.StartINN(t)
	t.Logf("INN %s", n.Version)
	c := dialPeer(t, starttls.NNTP, n.Addr, n.PKI)
	if !c.CapabilitiesBefore.Has("STARTTLS") || c.Capabilities.Has("STARTTLS") || !c.Capabilities.Has("READER") {
		t.Errorf("capabilities before %q, after %q", c.CapabilitiesBefore, c.Capabilities)
	}
	if _, err := c.Write([]byte("LIST\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "215") {
		t.Fatalf("LIST inside TLS: %q, %v", l, err)
	}
	var groups []string
	for i := 0; i < 10; i++ {
		l, err := c.ReadLine()
		if err != nil || l == "." {
			break
		}
		groups = append(groups, l)
	}
	if len(groups) != 1 || !strings.HasPrefix(groups[0], "test.starttls ") {
		t.Errorf("LIST inside TLS gave %q", groups)
	}
	if err := c.Quit(t.Context()); err != nil {
		t.Errorf("QUIT: %v", err)
	}
}

// sieveScriptServer is a ManageSieve application behind our server half:
// AUTHENTICATE PLAIN (initial response quoted or as a literal, the way
// sieve-connect sends it), LISTSCRIPTS with one active script, LOGOUT.
// Each connection's outcome goes to done.
func sieveScriptServer(t *testing.T, pki *testPKI) (addr string, done <-chan string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan string, 10)
	ctx, cancel := context.WithCancel(context.Background())
	srv := &starttls.Server{
		Protocol: starttls.Sieve,
		// The SASL capability is re-sent after TLS only (RFC 5804 §2.2):
		// the library keeps it out of the pre-TLS list under Required.
		Config: starttls.ServerConfig{TLSConfig: pki.Server, Capabilities: []string{"SASL PLAIN"}, PhaseTimeout: 10 * time.Second},
		Handler: func(_ context.Context, c *starttls.Conn) {
			defer c.Close()
			out <- sieveApp(c)
		},
		OnError: func(_ net.Addr, err error) { out <- "upgrade failed: " + err.Error() },
	}
	served := make(chan struct{})
	go func() { _ = srv.Serve(ctx, l); close(served) }()
	t.Cleanup(func() { cancel(); l.Close(); <-served })
	return l.Addr().String(), out
}

// sieveApp serves one upgraded ManageSieve session and says how it ended.
func sieveApp(c *starttls.Conn) string {
	if !c.Upgraded() {
		return "not upgraded"
	}
	var verbs []string
	authed := false
	send := func(lines ...string) bool {
		_, err := c.Write([]byte(strings.Join(lines, "\r\n") + "\r\n"))
		return err == nil
	}
	for i := 0; i < 50; i++ {
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		line, err := c.ReadLine()
		if err != nil {
			return strings.Join(verbs, ",") + " then " + err.Error()
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		verbs = append(verbs, verb)
		var ok bool
		switch {
		case verb == "NOOP" && strings.HasPrefix(arg, `"`):
			// The TAG response code (RFC 5804 §2.11): sieve-connect sends
			// NOOP "STARTTLS-RESYNC-CAPA" right after TLS and waits for it.
			ok = send(`OK (TAG ` + arg + `) "Done"`)
		case verb == "NOOP":
			ok = send(`OK "NOOP completed"`)
		case verb == "CAPABILITY":
			ok = send(`"IMPLEMENTATION" "interop"`, `"SASL" "PLAIN"`, `"SIEVE" "fileinto"`, `"VERSION" "1.0"`, `OK`)
		case verb == "LOGOUT":
			send(`OK "Bye"`)
			return strings.Join(verbs, ",")
		case verb == "AUTHENTICATE":
			mech, ir, _ := strings.Cut(arg, " ")
			var n int
			if _, err := fmt.Sscanf(ir, "{%d+}", &n); err == nil && n > 0 && n < 1024 {
				if ir, err = c.ReadLine(); err != nil || len(ir) < n {
					return "literal: " + fmt.Sprint(err)
				}
				ir = ir[:n]
			}
			raw, err := base64.StdEncoding.DecodeString(strings.Trim(ir, `"`))
			if strings.EqualFold(strings.Trim(mech, `"`), "PLAIN") && err == nil && string(raw) == "\x00user\x00secret" {
				authed = true
				ok = send(`OK "Logged in"`)
			} else {
				ok = send(`NO "Authentication failed"`)
			}
		case verb == "LISTSCRIPTS" && authed:
			ok = send(`"interop.sieve" ACTIVE`, `OK "Listscripts completed"`)
		default:
			ok = send(`NO "Not here"`)
		}
		if !ok {
			return strings.Join(verbs, ",") + " then a write failed"
		}
	}
	return strings.Join(verbs, ",") + " then too many commands"
}

// sieve-connect (Debian's) against our server half: STARTTLS, the
// certificate verified with --tlscafile, the capabilities re-read inside
// TLS, AUTHENTICATE PLAIN and LISTSCRIPTS. A wrong password gets no list
// and a CA it was not given stops it before any credentials.
func TestInteropSieveConnectAgainstOurServer(t *testing.T) {
	bins := peer.Require(t, "sieve-connect")
	pki := newPKI(t)
	caFile, err := pki.CA.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addr, done := sieveScriptServer(t, pki)
	_, port, _ := net.SplitHostPort(addr)
	run := func(pass, ca string) (string, error) {
		t.Helper()
		return peer.SieveConnectList(t, bins["sieve-connect"], port, ca, pass)
	}
	outcome := func() string {
		t.Helper()
		select {
		case s := <-done:
			return s
		case <-time.After(15 * time.Second):
			t.Fatal("the server saw no session end")
			return ""
		}
	}
	out, err := run("secret", caFile)
	if err != nil {
		t.Fatalf("sieve-connect --list: %v\n%s\nserver side: %s", err, out, outcome())
	}
	for _, want := range []string{">>> STARTTLS", "TLS activated", `"SASL" "PLAIN"`, "interop.sieve"} {
		if !strings.Contains(out, want) {
			t.Errorf("sieve-connect output lacks %q:\n%s", want, out)
		}
	}
	if got := outcome(); !strings.Contains(got, "AUTHENTICATE,LISTSCRIPTS") {
		t.Errorf("server side: %s", got)
	}

	if out, err := run("wrong", caFile); err == nil || strings.Contains(out, "interop.sieve") {
		t.Errorf("sieve-connect with a wrong password: %v\n%s", err, out)
	}
	if got := outcome(); strings.Contains(got, "LISTSCRIPTS") && !strings.Contains(got, "AUTHENTICATE") {
		t.Errorf("server side: %s", got)
	}

	otherCA, err := newPKI(t).CA.WriteFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run("secret", otherCA); err == nil || strings.Contains(out, "AUTHENTICATE") {
		t.Errorf("sieve-connect went on with a CA it was not given: %v\n%s", err, out)
	}
	if got := outcome(); !strings.HasPrefix(got, "upgrade failed") {
		t.Errorf("server side with an untrusted certificate: %s", got)
	}
}

// Our ftps client (implicit TLS) against vsftpd with implicit_ssl=YES:
// the handshake first, verified, then vsftpd's greeting and FEAT inside TLS.
func TestInteropVSFTPDImplicit(t *testing.T) {
	v := peer.StartVSFTPDImplicit(t)
	t.Logf("vsftpd %s", v.Version)
	c := dialPeer(t, starttls.FTPS, v.Addr, v.PKI)
	if !strings.Contains(c.Greeting, "vsFTPd") {
		t.Errorf("greeting inside TLS: %q", c.Greeting)
	}
	if !c.Capabilities.Has("PROT") || !c.Capabilities.Has("PBSZ") {
		t.Errorf("FEAT inside TLS: %q", c.Capabilities)
	}
	if _, err := c.Write([]byte("USER nosuchuser\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "331") {
		t.Errorf("USER inside TLS: %q, %v", l, err)
	}
}

// Our nntps client (implicit TLS) against nnrpd -S: the handshake first,
// verified, then the greeting and CAPABILITIES inside TLS, without STARTTLS.
func TestInteropINNImplicit(t *testing.T) {
	n := peer.StartINN(t)
	t.Logf("INN %s", n.Version)
	c := dialPeer(t, starttls.NNTPS, n.StartNNTPS(t), n.PKI)
	if !strings.HasPrefix(c.Greeting, "200") && !strings.HasPrefix(c.Greeting, "201") {
		t.Errorf("greeting inside TLS: %q", c.Greeting)
	}
	if c.Capabilities.Has("STARTTLS") || !c.Capabilities.Has("READER") {
		t.Errorf("capabilities inside TLS: %q", c.Capabilities)
	}
	if _, err := c.Write([]byte("DATE\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.ReadLine(); err != nil || !strings.HasPrefix(l, "111") {
		t.Errorf("DATE inside TLS: %q, %v", l, err)
	}
}
