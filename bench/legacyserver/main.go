//go:build bench

// Command legacyserver runs a STARTTLS server (the library's serve package)
// with a deliberately legacy TLS configuration: TLS 1.0-1.2 only, an RSA
// certificate, and RSA key exchange, CBC, 3DES and RC4 suites enabled. It
// exists only for bench/check-vs-testssl.sh and is built with -tags bench,
// so `go build ./...` and `go test ./...` never see it.
//
//	go build -tags bench -o /tmp/legacyserver ./bench/legacyserver
//	/tmp/legacyserver --proto smtp --listen 127.0.0.1:0
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/serve"
)

func main() {
	proto := flag.String("proto", "smtp", "protocol to serve")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	flag.Parse()
	if err := run(starttls.Protocol(*proto), *listen); err != nil {
		fmt.Fprintln(os.Stderr, "legacyserver:", err)
		os.Exit(1)
	}
}

func run(p starttls.Protocol, listen string) error {
	dir, err := os.MkdirTemp("", "starttls-legacy-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	ca, err := certs.NewCA("starttls bench legacy CA")
	if err != nil {
		return err
	}
	leaf, err := ca.Issue(certs.LeafOptions{Key: certs.RSA2048})
	if err != nil {
		return err
	}
	caFile, err := ca.WriteFiles(dir)
	if err != nil {
		return err
	}
	cfg := peer.LegacyTLSConfig(leaf.TLS)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	addr, done, err := serve.Run(ctx, serve.Options{Protocol: p, Listen: listen, TLSConfig: cfg})
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "CA certificate: %s\n", caFile)
	fmt.Printf("listening on %s (%s, legacy TLS 1.0-1.2)\n", addr, p)
	return <-done
}
