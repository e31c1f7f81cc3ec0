package all_test

import (
	"context"
	"crypto/tls"
	"go/ast"
	"go/parser"
	"go/token"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	_ "github.com/starttls-go/starttls/internal/proto/all"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// unnamed is a protocol registered here and nowhere else, with no
// constant in the root package: POP3's description under another name.
const unnamed = "pop3-unnamed"

func init() {
	p := *registry.Lookup("pop3")
	p.Name, p.Port, p.Implicit, p.ClientTest = unnamed, 1110, &registry.Twin{Name: unnamed + "s", Port: 1995}, nil
	registry.Register(&p)
}

// Every base protocol with an upgrade to probe has a description whole
// enough for the root package (a port, both halves), every description
// names a base protocol of the library, and every constant of the root
// package's protocols.go is registered, as a protocol or as the twin of
// one.
func TestEveryProtocolRegistered(t *testing.T) {
	for _, p := range starttls.Protocols() {
		info, err := starttls.Lookup(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Implicit {
			continue
		}
		d := registry.Lookup(string(p))
		if d == nil {
			t.Errorf("%s: no description registered (internal/proto/all imports its folder?)", p)
			continue
		}
		if d.Probes.Injection == "" {
			t.Errorf("%s: no command-injection probe", p)
		}
		if d.Probes.Sentinel != "" && d.Probes.Judge == nil {
			t.Errorf("%s: a sentinel without a judge", p)
		}
	}
	for _, name := range registry.Names() {
		d := registry.Lookup(name)
		if d.Port <= 0 || d.Client == nil || d.Server == nil {
			t.Errorf("%s: port %d, client half %v, server half %v", name, d.Port, d.Client != nil, d.Server != nil)
		}
		if tw := d.Implicit; tw != nil && tw.Port <= 0 {
			t.Errorf("%s: twin %s without a port", name, tw.Name)
		}
		info, err := starttls.Lookup(starttls.Protocol(name))
		if err != nil || info.Implicit || info.Base != starttls.Protocol(name) || info.DefaultPort != d.Port {
			t.Errorf("registered %q is not a base protocol of the library (%v)", name, err)
		}
	}
	consts := rootConstants(t)
	if len(consts) < 20 {
		t.Fatalf("found %d constants in protocols.go: %v", len(consts), consts)
	}
	for c, v := range consts {
		info, err := starttls.Lookup(starttls.Protocol(v))
		if err != nil {
			t.Errorf("%s = %q: %v", c, v, err)
			continue
		}
		d := registry.Lookup(string(info.Base))
		switch {
		case d == nil:
			t.Errorf("%s = %q: base %q not registered", c, v, info.Base)
		case info.Implicit && (d.Implicit == nil || d.Implicit.Name != v):
			t.Errorf("%s = %q: not the implicit twin of %q", c, v, info.Base)
		}
	}
}

// rootConstants returns the Protocol constants of the root package's
// protocols.go, by name.
func rootConstants(t *testing.T) map[string]string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "../../../protocols.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, decl := range f.Decls {
		g, ok := decl.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "Protocol" {
				continue
			}
			for i, n := range vs.Names {
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok {
					t.Fatalf("%s: not a string literal", n.Name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				out[n.Name] = v
			}
		}
	}
	return out
}

// A name registered by a folder, with no constant in the root package,
// is a protocol of the library: Lookup knows it and its twin, and Dial
// and Server speak it.
func TestRegisteredNameWithoutConstant(t *testing.T) {
	info, err := starttls.Lookup(unnamed)
	if err != nil || info.DefaultPort != 1110 || info.Implicit || !info.Server {
		t.Fatalf("Lookup(%q) = %+v, %v", unnamed, info, err)
	}
	if tw, err := starttls.Lookup(unnamed + "s"); err != nil || !tw.Implicit || tw.Base != unnamed || tw.DefaultPort != 1995 {
		t.Fatalf("Lookup(%q) = %+v, %v", unnamed+"s", tw, err)
	}

	ca, err := certs.NewCA("registry test CA")
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := ca.Issue(certs.LeafOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &starttls.Server{
		Protocol: unnamed,
		Config:   starttls.ServerConfig{TLSConfig: &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}},
		// Inside TLS the client asks for CAPA again; the handler answers it.
		Handler: func(_ context.Context, c *starttls.Conn) {
			defer c.Close()
			if _, err := c.ReadLine(); err == nil {
				c.Write([]byte("+OK\r\nUSER\r\n.\r\n"))
				c.ReadLine()
			}
		},
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	c, err := starttls.Dial(ctx, unnamed, l.Addr().String(), &starttls.Config{TLSConfig: &tls.Config{RootCAs: ca.Pool()}})
	if err != nil {
		t.Fatalf("Dial(%q): %v", unnamed, err)
	}
	if !c.Upgraded() {
		t.Error("not upgraded")
	}
	c.Close()
	cancel()
	<-done
}
