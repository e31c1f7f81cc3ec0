//go:build bench

// Command diffservers starts the differential set of bench/check-vs-testssl.sh
// on loopback: the Postfix, Dovecot and openssl s_server members of
// internal/peer's StartDiffSet (the same set-up as the Go differential
// test) plus the legacy crypto/tls server of bench/legacyserver. It prints
// one line per server, "NAME URL TESTSSL-PROTO ADDR CAFILE", then "ready",
// and runs until SIGINT/SIGTERM, when it stops everything it started.
//
//	go build -tags bench -o /tmp/diffservers ./bench/diffservers
//	/tmp/diffservers [NAME...]     # root: Postfix and Dovecot switch users
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/serve"
)

// progTB lets internal/peer's starters, written for tests, run in a
// program: cleanups run at exit, a fatal error or a skip ends the program.
// Methods peer does not use are left to the embedded nil interface.
type progTB struct {
	testing.TB
	cleanups []func()
}

func (p *progTB) Helper()      {}
func (p *progTB) Name() string { return "diffservers" }
func (p *progTB) Cleanup(f func()) {
	p.cleanups = append(p.cleanups, f)
}
func (p *progTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "diffservers: "+format+"\n", args...)
}
func (p *progTB) Fatal(args ...any) { p.exit(fmt.Sprint(args...)) }
func (p *progTB) Fatalf(format string, args ...any) {
	p.exit(fmt.Sprintf(format, args...))
}
func (p *progTB) Skip(args ...any) { p.exit("cannot start: " + fmt.Sprint(args...)) }
func (p *progTB) Skipf(format string, args ...any) {
	p.exit("cannot start: " + fmt.Sprintf(format, args...))
}

// stop runs the cleanups, last registered first, as testing does.
func (p *progTB) stop() {
	for i := len(p.cleanups) - 1; i >= 0; i-- {
		p.cleanups[i]()
	}
	p.cleanups = nil
}

func (p *progTB) exit(msg string) {
	fmt.Fprintln(os.Stderr, "diffservers:", msg)
	p.stop()
	os.Exit(1)
}

func main() {
	tb := &progTB{}
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	names := os.Args[1:]
	withLegacy := len(names) == 0
	var peerNames []string
	for _, n := range names {
		if n == "legacy-go" {
			withLegacy = true
		} else {
			peerNames = append(peerNames, n)
		}
	}
	var set []peer.DiffServer
	if len(names) == 0 || len(peerNames) > 0 {
		set = peer.StartDiffSet(tb, peerNames...)
	}
	if withLegacy {
		set = append(set, startLegacy(ctx, tb))
	}
	for _, s := range set {
		fmt.Printf("%s %s %s %s %s\n", s.Name, s.URL, s.Proto, s.Addr, s.CAFile)
		fmt.Fprintf(os.Stderr, "diffservers: %s: %s\n", s.Name, s.Comment)
	}
	fmt.Println("ready")
	<-ctx.Done()
	tb.stop()
}

// startLegacy serves SMTP with bench/legacyserver's configuration.
func startLegacy(ctx context.Context, tb *progTB) peer.DiffServer {
	dir, err := os.MkdirTemp("", "starttls-legacy-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	ca, err := certs.NewCA("starttls bench legacy CA")
	if err != nil {
		tb.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{Key: certs.RSA2048})
	if err != nil {
		tb.Fatal(err)
	}
	caFile, err := ca.WriteFiles(dir)
	if err != nil {
		tb.Fatal(err)
	}
	sctx, stop := context.WithCancel(ctx)
	a, done, err := serve.Run(sctx, serve.Options{Protocol: starttls.SMTP, Listen: "127.0.0.1:0",
		TLSConfig: peer.LegacyTLSConfig(leaf.TLS)})
	if err != nil {
		stop()
		tb.Fatal(err)
	}
	tb.Cleanup(func() { stop(); <-done })
	addr := a.String()
	return peer.DiffServer{Name: "legacy-go", URL: "smtp://" + addr, Proto: "smtp", Addr: addr,
		CAFile: filepath.Clean(caFile), Comment: "crypto/tls (bench/legacyserver's configuration): TLS 1.0-1.2, RSA kex, CBC, 3DES, RC4"}
}
