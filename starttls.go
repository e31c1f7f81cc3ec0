// Package starttls upgrades plaintext protocol connections to TLS, on the
// client and on the server side, for the protocols that use STARTTLS (SMTP,
// LMTP, IMAP, POP3, XMPP, LDAP, FTP, NNTP, ManageSieve, PostgreSQL, MySQL,
// IRC, HTTP) and for their implicit-TLS ports.
//
// It is secure by default: a client requires the upgrade and verifies the
// certificate unless told otherwise; nothing read before TLS is trusted or
// kept after it; bytes pipelined across the upgrade in either direction are
// an error; every phase has a deadline and every line a size limit.
//
// Dial (or Client on a connection of your own) is the client side; Accept,
// Server and NewListener the server side. Each protocol's wire format is
// this package's own business and not part of its API.
package starttls

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// Protocol names a dialogue: "smtp", "imap", "imaps", ...
type Protocol string

// spec is everything the package knows about one protocol.
type spec struct {
	name     Protocol
	port     int
	implicit bool     // TLS from the first byte
	base     Protocol // for implicit variants: the protocol spoken inside TLS
	client   *dialog.ClientHalf
	server   *dialog.ServerHalf
	alpn     []string // ALPN both sides use unless the caller set its own
}

func lookupSpec(p Protocol) *spec {
	return table()[Protocol(strings.ToLower(string(p)))]
}

// Protocols lists every registered protocol name, sorted.
func Protocols() []Protocol {
	out := make([]Protocol, 0, len(table()))
	for n := range table() {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// ProtocolInfo describes a registered protocol.
type ProtocolInfo struct {
	Name        Protocol
	DefaultPort int
	Implicit    bool     // TLS from the first byte
	Base        Protocol // the plaintext protocol spoken (itself unless Implicit)
	Server      bool     // the server half exists
}

// Lookup returns what is known about a protocol.
func Lookup(p Protocol) (ProtocolInfo, error) {
	s := lookupSpec(p)
	if s == nil {
		return ProtocolInfo{}, fmt.Errorf("%w %q", ErrUnknownProtocol, p)
	}
	return ProtocolInfo{Name: s.name, DefaultPort: s.port, Implicit: s.implicit, Base: s.base, Server: s.server != nil}, nil
}

// Defaults for Config and ServerConfig.
const (
	DefaultPhaseTimeout   = 15 * time.Second
	DefaultMaxLineLength  = 8192
	DefaultMaxPreTLSBytes = 256 << 10
)

// Config is a client's configuration. The zero value (or nil) is secure:
// STARTTLS required, certificates verified against the system roots, SNI
// set from the address, TLS 1.2 or newer.
type Config struct {
	// TLSConfig is cloned; ServerName defaults to the host being dialled and
	// MinVersion to TLS 1.2.
	TLSConfig *tls.Config
	// Opportunistic allows continuing in plaintext when STARTTLS is not
	// offered or refused (RFC 3207 port-25 behaviour). Injection and
	// certificate failures are errors even then.
	Opportunistic bool
	// LocalName is what the client calls itself (EHLO/LHLO argument). Default "localhost".
	LocalName string
	// Domain is the service domain where a protocol needs one (XMPP stream
	// "to"); default: the host being dialled.
	Domain string
	// PhaseTimeout bounds each phase (connect, greeting, each exchange,
	// handshake) on top of ctx's deadline. Default 15 s.
	PhaseTimeout time.Duration
	// MaxLineLength bounds one line from the server. Default 8192.
	MaxLineLength int
	// MaxPreTLSBytes bounds everything the server may send before TLS. Default 256 KiB.
	MaxPreTLSBytes int
	// Logger receives debug events; nil means silence.
	Logger *slog.Logger
	// LocalAddr is the address Dial connects from, for a scanner with
	// several source addresses; nil lets the system choose.
	LocalAddr net.Addr
	// Dial, when set, opens the TCP connection instead of a net.Dialer
	// (LocalAddr is then the dialer's business): a scanner counts or
	// rate-limits connections through it, a test routes them. It is
	// called with ctx bounded by PhaseTimeout.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)

	// PipelineAfterUpgrade is for auditing servers, never for real
	// sessions: these bytes are sent in the same write as the upgrade
	// command (command-injection probe, CVE-2011-0411 class), and the
	// post-TLS capability query is skipped so that the caller can see
	// whether the server answers them inside TLS.
	PipelineAfterUpgrade []byte

	// SkipCapabilityQuery leaves out the capability query inside TLS,
	// one round trip, for a relay whose own client asks for capabilities
	// itself once TLS is up (a proxy that originates STARTTLS). The Conn's
	// Capabilities are then empty: what the server said before TLS is
	// never passed off as its capabilities.
	SkipCapabilityQuery bool

	noHandshake bool // set by Negotiate
}

// defaultLimits fills in the limits a Config or ServerConfig left at zero.
func defaultLimits(phase *time.Duration, maxLine, maxPreTLS *int) {
	if *phase <= 0 {
		*phase = DefaultPhaseTimeout
	}
	if *maxLine <= 0 {
		*maxLine = DefaultMaxLineLength
	}
	if *maxPreTLS <= 0 {
		*maxPreTLS = DefaultMaxPreTLSBytes
	}
}

func (c *Config) orDefault() *Config {
	var out Config
	if c != nil {
		out = *c
	}
	if out.LocalName == "" {
		out.LocalName = "localhost"
	}
	defaultLimits(&out.PhaseTimeout, &out.MaxLineLength, &out.MaxPreTLSBytes)
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	return &out
}

func (c *Config) tlsConfig(serverName string) *tls.Config {
	var t *tls.Config
	if c.TLSConfig != nil {
		t = c.TLSConfig.Clone()
	} else {
		t = &tls.Config{}
	}
	if t.ServerName == "" {
		t.ServerName = serverName
	}
	if t.MinVersion == 0 {
		t.MinVersion = tls.VersionTLS12
	}
	return t
}

// SplitHostPort splits addr and supplies the protocol's default port when
// addr has none. It accepts "host", "host:port", "[v6]" and "[v6]:port".
func SplitHostPort(addr string, p Protocol) (host string, port int, err error) {
	s := lookupSpec(p)
	if s == nil {
		return "", 0, fmt.Errorf("%w %q", ErrUnknownProtocol, p)
	}
	h, ps, err := net.SplitHostPort(addr)
	if err != nil {
		// No port: the whole thing is the host.
		h = strings.TrimSuffix(strings.TrimPrefix(addr, "["), "]")
		if h == "" {
			return "", 0, fmt.Errorf("empty host in %q", addr)
		}
		return h, s.port, nil
	}
	n, err := strconv.Atoi(ps)
	if err != nil || n <= 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", addr)
	}
	return h, n, nil
}

// Dial connects to addr (default port from the protocol) and performs the
// upgrade. The returned Conn speaks TLS unless cfg.Opportunistic allowed a
// plaintext fallback (then Conn.TLS is nil and Conn.Fallback says why).
func Dial(ctx context.Context, proto Protocol, addr string, cfg *Config) (*Conn, error) {
	sp, host, raw, took, cfg, err := dial(ctx, proto, addr, cfg)
	if err != nil {
		return nil, err
	}
	return runClient(ctx, raw, sp, cfg, host, took)
}

// dial resolves the protocol and connects; cfg comes back with its defaults.
func dial(ctx context.Context, proto Protocol, addr string, cfg *Config) (*spec, string, net.Conn, time.Duration, *Config, error) {
	sp := lookupSpec(proto)
	if sp == nil {
		return nil, "", nil, 0, nil, fmt.Errorf("%w %q", ErrUnknownProtocol, proto)
	}
	host, port, err := SplitHostPort(addr, proto)
	if err != nil {
		return nil, "", nil, 0, nil, err
	}
	cfg = cfg.orDefault()
	hp := net.JoinHostPort(host, strconv.Itoa(port))
	start := time.Now()
	var raw net.Conn
	if cfg.Dial != nil {
		dctx, cancel := context.WithTimeout(ctx, cfg.PhaseTimeout)
		raw, err = cfg.Dial(dctx, "tcp", hp)
		cancel()
	} else {
		d := net.Dialer{Timeout: cfg.PhaseTimeout, LocalAddr: cfg.LocalAddr}
		raw, err = d.DialContext(ctx, "tcp", hp)
	}
	if err != nil {
		return nil, "", nil, 0, nil, &ProtocolError{Protocol: sp.name, Peer: hp, Phase: PhaseConnect, Err: classifyIO(ctx, err)}
	}
	return sp, host, raw, time.Since(start), cfg, nil
}

// Client performs the upgrade on an established connection (the greeting
// not yet read). serverName, the name verified and sent as SNI, comes from
// cfg.TLSConfig.ServerName or else the remote address. On error conn is closed.
func Client(ctx context.Context, conn net.Conn, proto Protocol, cfg *Config) (*Conn, error) {
	sp := lookupSpec(proto)
	if sp == nil {
		conn.Close()
		return nil, fmt.Errorf("%w %q", ErrUnknownProtocol, proto)
	}
	host, _, _ := net.SplitHostPort(conn.RemoteAddr().String())
	return runClient(ctx, conn, sp, cfg.orDefault(), host, 0)
}
