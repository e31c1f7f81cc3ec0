package peer

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"
)

// TestOpenSSLServerFront: an SSLRequest gets 'S' and then OpenSSL's
// handshake (the session is s_server's, with its certificate chain); any
// other first packet is dropped without an answer.
func TestOpenSSLServerFront(t *testing.T) {
	s := StartOpenSSLServer(t, OpenSSLServerOptions{Args: []string{"-no_ticket"}})
	dial := func() net.Conn {
		c, err := net.DialTimeout("tcp", s.Addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}

	c := dial()
	defer c.Close()
	if _, err := c.Write(pgSSLRequest); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil || b[0] != 'S' {
		t.Fatalf("answer to SSLRequest: %q, %v", b, err)
	}
	tc := tls.Client(c, &tls.Config{RootCAs: s.CA.Pool(), ServerName: "mail.test"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake through the front: %v", err)
	}
	if n := len(tc.ConnectionState().PeerCertificates); n != 2 {
		t.Errorf("s_server sent %d certificates, want leaf and CA", n)
	}

	g := dial()
	defer g.Close()
	if _, err := g.Write([]byte("GET / HTTP/1.0\r\n")); err != nil {
		t.Fatal(err)
	}
	if n, err := g.Read(b); err == nil {
		t.Fatalf("the front answered %q to a non-SSLRequest", b[:n])
	}
}
