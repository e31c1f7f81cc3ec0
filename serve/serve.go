// Package serve runs working STARTTLS servers: the library's server half
// for the upgrade, then a small but real application (SMTP that accepts
// mail, IMAP and POP3 with an empty mailbox, an LDAP root DSE, SQL servers
// that answer SELECT 1) inside TLS. It backs `starttls serve`,
// `starttls demo` and the tests.
//
// The applications live with their protocol, in
// internal/proto/NAME/serve.go, and are found through
// internal/proto/registry; this package holds what they share: the
// listener, the session (a registry.ServeConn) and its limits.
package serve

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	_ "github.com/starttls-go/starttls/internal/proto/all"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// Options configure one server.
type Options struct {
	Protocol starttls.Protocol
	Listen   string // default 127.0.0.1:0
	// Listener, when set, is served instead of listening on Listen (a
	// benchmark wraps one to delay the server's replies).
	Listener  net.Listener
	TLSConfig *tls.Config
	Policy    starttls.ServerPolicy
	// Capabilities are extra capabilities advertised before TLS (the
	// library drops AUTH-like ones under the Required policy).
	Capabilities []string
	Hostname     string // default localhost
	// MailDir, when set, receives each SMTP/LMTP message and each XMPP
	// message body as a file.
	MailDir string
	// Users maps user names to passwords; nil accepts any.
	Users map[string]string
	// IdleTimeout closes a silent connection. Default 2 minutes.
	IdleTimeout time.Duration
	Logger      *slog.Logger
	OnEvent     func(remote net.Addr, e starttls.Event)
}

// Server is a running server.
type Server struct {
	Addr   net.Addr
	cancel context.CancelFunc
	done   chan error
}

// app is a post-TLS application for one base protocol.
type app func(ctx context.Context, s *session)

// appFor returns the application of base protocol p, which its folder
// internal/proto/NAME registered with internal/proto/registry, or nil.
// Protocols without one get a drain-and-close app so that every
// protocol with a server half can still be served.
func appFor(p starttls.Protocol) app {
	if d := registry.Lookup(string(p)); d != nil && d.Serve != nil {
		return func(ctx context.Context, s *session) { d.Serve(ctx, appSession{s}) }
	}
	return nil
}

// Start listens and serves in the background until ctx ends or Close.
func Start(ctx context.Context, o Options) (*Server, error) {
	info, err := starttls.Lookup(o.Protocol)
	if err != nil {
		return nil, err
	}
	if !info.Server {
		return nil, fmt.Errorf("protocol %s has no server side", o.Protocol)
	}
	if o.TLSConfig == nil {
		return nil, errors.New("serve: no TLS configuration")
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	l := o.Listener
	if l == nil {
		var err error
		if l, err = net.Listen("tcp", o.Listen); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	a := appFor(info.Base)
	if a == nil {
		a = drainApp
	}
	caps := o.Capabilities
	if d := registry.Lookup(string(info.Base)); d != nil && caps == nil {
		// ManageSieve: the capabilities re-sent inside TLS (RFC 5804
		// §2.2) come from the server half, and the app takes
		// AUTHENTICATE PLAIN: a client that sees no SASL there will not
		// log in. Required drops it before TLS.
		caps = d.ServeCapabilities
	}
	srv := &starttls.Server{
		Protocol: o.Protocol,
		Config: starttls.ServerConfig{
			TLSConfig: o.TLSConfig, Policy: o.Policy, Hostname: o.Hostname,
			Capabilities: caps, OnEvent: o.OnEvent, Logger: o.Logger,
		},
		Handler: func(ctx context.Context, c *starttls.Conn) {
			defer c.Close()
			s := &session{c: c, o: &o, br: bufio.NewReaderSize(c, 64<<10)}
			o.Logger.Info("session", "peer", c.RemoteAddr().String(), "tls", c.TLS != nil)
			a(ctx, s)
		},
		OnError: func(remote net.Addr, err error) {
			o.Logger.Info("upgrade failed", "peer", remote.String(), "err", err)
		},
	}
	s := &Server{Addr: l.Addr(), cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx, l) }()
	return s, nil
}

// ServeConn runs the application of c's protocol on a connection that is
// already upgraded (or handed off), for servers built outside Start, such
// as the scenario servers of package clienttest. It returns when the
// client leaves, ctx ends or the session idles out.
func ServeConn(ctx context.Context, c *starttls.Conn, o Options) {
	info, err := starttls.Lookup(c.Protocol)
	if err != nil {
		return
	}
	if o.Hostname == "" {
		o.Hostname = "localhost"
	}
	if o.IdleTimeout <= 0 {
		o.IdleTimeout = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	a := appFor(info.Base)
	if a == nil {
		a = drainApp
	}
	a(ctx, &session{c: c, o: &o, br: bufio.NewReaderSize(c, 64<<10)})
}

// Close stops the server and waits for its connections to end.
func (s *Server) Close() error {
	s.cancel()
	return <-s.done
}

// Run serves until ctx ends.
func Run(ctx context.Context, o Options) (net.Addr, <-chan error, error) {
	s, err := Start(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	return s.Addr, s.done, nil
}

// ThrowawayTLS makes a CA and a leaf for localhost, 127.0.0.1 and ::1 and
// writes ca.pem into dir.
func ThrowawayTLS(dir string, hosts ...string) (*tls.Config, string, error) {
	ca, err := certs.NewCA("starttls throwaway CA")
	if err != nil {
		return nil, "", err
	}
	leaf, err := ca.Issue(certs.LeafOptions{Hosts: hosts})
	if err != nil {
		return nil, "", err
	}
	caFile, err := ca.WriteFiles(dir)
	if err != nil {
		return nil, "", err
	}
	return &tls.Config{Certificates: []tls.Certificate{leaf.TLS}}, caFile, nil
}

// HasApp reports whether p has a real application behind the upgrade (not
// only the drain-and-close fallback).
func HasApp(p starttls.Protocol) bool {
	info, err := starttls.Lookup(p)
	return err == nil && info.Server && appFor(info.Base) != nil
}
