package main

import (
	"context"
	"crypto/tls"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/serve"
)

// --xmpp-host is the stream's 'to' when the host connected to is another
// name, and the default name verified; without it a server for another
// domain answers host-unknown.
func TestConnectXMPPHost(t *testing.T) {
	addr, ca := serveProto(t, starttls.XMPP, "chat.example.test", "chat.example.test")
	code, out, errs := runCLI(t, "", "connect", "--json", "--ca", ca, "--xmpp-host", "chat.example.test", "xmpp://"+addr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	r := decodeConnect(t, out)
	if !strings.Contains(r.Transcript[0].Text, "to='chat.example.test'") {
		t.Errorf("first header sent: %q", r.Transcript[0].Text)
	}
	if r.TLS.ServerName != "chat.example.test" || !r.Verification.OK {
		t.Errorf("verified %q: %+v", r.TLS.ServerName, r.Verification)
	}

	code, _, errs = runCLI(t, "", "connect", "--ca", ca, "xmpp://"+addr)
	if code == 0 || !strings.Contains(errs, "host-unknown") {
		t.Errorf("without --xmpp-host: exit %d, %q", code, errs)
	}
	// --servername still decides SNI and verification on its own.
	code, _, errs = runCLI(t, "", "connect", "--ca", ca, "--xmpp-host", "chat.example.test", "--servername", "other.test", "xmpp://"+addr)
	if code == 0 || !strings.Contains(errs, "certificate") {
		t.Errorf("--servername other.test: exit %d, %q", code, errs)
	}
	code, _, errs = runCLI(t, "", "connect", "--xmpp-host", "x.test", "smtp://"+addr)
	if code != exitUsage || !strings.Contains(errs, "--xmpp-host") {
		t.Errorf("--xmpp-host on smtp: exit %d, %q", code, errs)
	}
}

// For server-to-server streams the 'to' is --xmpp-host and the 'from' is
// --local-name, as the receiving server sees them.
func TestConnectXMPPServerFromTo(t *testing.T) {
	pki := newTestPKI(t, nil)
	leaf, err := pki.ca.Issue(certs.LeafOptions{Hosts: []string{"recv.example.test"}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var from string
	addr := libServer(t, starttls.XMPPServer, starttls.ServerConfig{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}, Hostname: "recv.example.test",
	}, func(ctx context.Context, c *starttls.Conn) {
		mu.Lock()
		from = c.ClientName
		mu.Unlock()
		defer c.Close()
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		serve.ServeConn(ctx, c, serve.Options{Hostname: "recv.example.test", IdleTimeout: 5 * time.Second})
	})
	code, out, errs := runCLI(t, "", "connect", "--json", "--ca", pki.caFile, "--xmpp-host", "recv.example.test", "--local-name", "send.example.test", "xmpp-server://"+addr)
	if code != 0 {
		t.Fatalf("exit %d: %s\n%s", code, errs, out)
	}
	r := decodeConnect(t, out)
	hdr := r.Transcript[0].Text
	if !strings.Contains(hdr, "to='recv.example.test'") || !strings.Contains(hdr, "from='send.example.test'") || !strings.Contains(hdr, "jabber:server") {
		t.Errorf("s2s header: %q", hdr)
	}
	mu.Lock()
	defer mu.Unlock()
	if from != "send.example.test" {
		t.Errorf("the server saw from=%q", from)
	}
}

// check passes --xmpp-host as the stream's domain and the name verified.
func TestCheckXMPPHost(t *testing.T) {
	addr, ca := serveProto(t, starttls.XMPP, "chat.example.test", "chat.example.test")
	code, out, errs := runCLI(t, "", "check", "--only", "quick", "--ca", ca, "--xmpp-host", "chat.example.test", "xmpp://"+addr)
	if code != 0 || !strings.Contains(out, "for chat.example.test") {
		t.Errorf("exit %d: %s\n%s", code, errs, out)
	}
	// The stream's domain and the name verified may differ (a hosting
	// provider's certificate): the server answers only for its domain, so a
	// wrong --xmpp-host fails the dialogue while --servername alone moves
	// the verification.
	addr2, ca2 := serveProto(t, starttls.XMPP, "chat.example.test", "chat.example.test", "srv.example.test")
	code, out, errs = runCLI(t, "", "check", "--only", "quick", "--ca", ca2, "--xmpp-host", "chat.example.test", "--servername", "srv.example.test", "xmpp://"+addr2)
	if code != 0 || !strings.Contains(out, "srv.example.test") {
		t.Errorf("differing --servername: exit %d, %q\n%s", code, errs, out)
	}
	code, out, _ = runCLI(t, "", "check", "--only", "quick", "--ca", ca2, "--xmpp-host", "other.example.test", "--servername", "srv.example.test", "xmpp://"+addr2)
	if code == 0 {
		t.Errorf("a stream to a domain the server does not serve passed the check:\n%s", out)
	}
	code, _, _ = runCLI(t, "", "check", "--xmpp-host", "chat.example.test", "imap://"+addr)
	if code != exitUsage {
		t.Errorf("--xmpp-host on imap: exit %d", code)
	}
}

// serve --xmpp-host answers for that domain, with a throwaway certificate
// that names it.
func TestServeXMPPHost(t *testing.T) {
	addr, stderr := startServe(t, "--proto", "xmpp", "--xmpp-host", "chat.example.test")
	caFile, ok := strings.CutPrefix(strings.TrimSpace(stderr), "CA certificate: ")
	if !ok {
		t.Fatalf("no CA path on stderr: %q", stderr)
	}
	dialVerified(t, starttls.XMPP, addr, poolFromFile(t, caFile), "chat.example.test", "chat.example.test")
	code, _, errs := runCLI(t, "", "serve", "--proto", "imap", "--xmpp-host", "chat.example.test")
	if code != exitUsage {
		t.Errorf("--xmpp-host on imap: exit %d, %q", code, errs)
	}
}
