package starttls_test

import (
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
