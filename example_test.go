package starttls_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
)

// exampleTLS returns a server config with a leaf for localhost/127.0.0.1
// and a client config trusting its CA; real code loads its own files.
func exampleTLS() (server, client *tls.Config) {
	ca, err := certs.NewCA("example CA")
	if err != nil {
		panic(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		panic(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}, &tls.Config{RootCAs: ca.Pool()}
}

// A submission server behind STARTTLS: the library speaks the greeting,
// EHLO and STARTTLS; the handler gets the client's first command inside TLS.
// The client side dials it, requiring TLS and verifying the certificate.
func Example() {
	serverTLS, clientTLS := exampleTLS()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &starttls.Server{
		Protocol: starttls.Submission,
		Config:   starttls.ServerConfig{TLSConfig: serverTLS, Capabilities: []string{"SIZE 10240000", "AUTH PLAIN"}},
		Handler: func(ctx context.Context, c *starttls.Conn) {
			defer c.Close()
			for i := 0; i < 10; i++ {
				line, err := c.ReadLine()
				if err != nil {
					return
				}
				switch verb, _, _ := strings.Cut(line, " "); strings.ToUpper(verb) {
				case "EHLO":
					// Inside TLS, AUTH may be offered.
					fmt.Fprint(c, "250-localhost\r\n250-SIZE 10240000\r\n250 AUTH PLAIN\r\n")
				case "QUIT":
					fmt.Fprint(c, "221 bye\r\n")
					return
				default:
					fmt.Fprint(c, "502 not in this example\r\n")
				}
			}
		},
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()

	c, err := starttls.Dial(ctx, starttls.Submission, l.Addr().String(), &starttls.Config{TLSConfig: clientTLS})
	if err != nil {
		fmt.Println("error:", err)
		return
	}
	fmt.Println("upgraded:", c.Upgraded())
	fmt.Println("AUTH before TLS:", c.CapabilitiesBefore.Has("AUTH"))
	fmt.Println("AUTH after TLS:", c.Capabilities.Has("AUTH"))
	fmt.Println("quit:", c.Quit(ctx))
	cancel()
	<-done
	// Output:
	// upgraded: true
	// AUTH before TLS: false
	// AUTH after TLS: true
	// quit: <nil>
}

// A server that does not offer STARTTLS: the default client refuses to go
// on in plaintext, and the error says why.
func ExampleDial_notOffered() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(c, "220 old.example ESMTP\r\n")
		buf := make([]byte, 512)
		c.Read(buf) // EHLO
		fmt.Fprint(c, "250-old.example\r\n250 PIPELINING\r\n")
		c.Read(buf)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = starttls.Dial(ctx, starttls.SMTP, l.Addr().String(), nil)
	fmt.Println(errors.Is(err, starttls.ErrNotOffered), starttls.StatusOf(err))
	// Output:
	// true not-offered
}

// Accept upgrades one connection the application accepted itself; a client
// that pipelines a command after STARTTLS (CVE-2011-0411 class) is cut off
// before TLS, and the event is reported.
func ExampleAccept() {
	serverTLS, _ := exampleTLS()
	client, server := net.Pipe()
	go func() {
		defer client.Close()
		buf := make([]byte, 512)
		client.Read(buf) // greeting
		client.Write([]byte("EHLO x\r\n"))
		client.Read(buf) // capabilities
		client.Write([]byte("STARTTLS\r\nRSET\r\n"))
		client.Read(buf)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cfg := &starttls.ServerConfig{
		TLSConfig: serverTLS,
		OnEvent: func(_ net.Addr, e starttls.Event) {
			fmt.Printf("event: %s %q\n", e.Kind, e.Data)
		},
	}
	_, err := starttls.Accept(ctx, server, starttls.SMTP, cfg)
	fmt.Println(starttls.StatusOf(err))
	// Output:
	// event: command-injection "RSET\r\n"
	// injection
}
