package starttls

import (
	"context"
	"fmt"
	"net"

	"github.com/starttls-go/starttls/internal/wire"
)

// Functions for auditing servers (starttls check, scan): they let a caller
// see the raw connection or misbehave on purpose. Ordinary clients need
// none of them.

// auditPipeline returns the bytes to pipeline after the upgrade command.
func (s *clientSession) auditPipeline() string {
	if s.phase != PhaseStartTLS || s.cfg.PipelineAfterUpgrade == nil || s.inTLS {
		return ""
	}
	return string(s.cfg.PipelineAfterUpgrade)
}

// Negotiate dials addr and runs the plaintext dialogue up to the server's
// go-ahead, then returns the raw connection where the server expects a
// ClientHello (for implicit protocols: right after connecting). It is the
// dialer for raw TLS probes that crypto/tls cannot make (old versions,
// chosen cipher suites). The returned Conn carries what was learned.
func Negotiate(ctx context.Context, proto Protocol, addr string, cfg *Config) (net.Conn, *Conn, error) {
	cfg = cfg.orDefault()
	cfg.noHandshake = true
	cfg.Opportunistic = false
	sp, host, raw, took, cfg, err := dial(ctx, proto, addr, cfg)
	if err != nil {
		return nil, nil, err
	}
	c, err := runClient(ctx, raw, sp, cfg, host, took)
	if err != nil {
		return nil, nil, err
	}
	return raw, c, nil
}

// UpgradeAgain sends the upgrade command once more inside TLS. A server
// must refuse it (RFC 3207 §4.2, RFC 2595 §3.1): nil means it gave the
// go-ahead a second time, an error matching ErrRefused means it refused.
func (c *Conn) UpgradeAgain(ctx context.Context) error {
	s := c.session
	if s == nil || c.TLS == nil {
		return fmt.Errorf("%w: not an upgraded client connection", ErrProtocol)
	}
	s.ctx = ctx
	s.dl = wire.Bind(ctx, c.Conn, s.cfg.PhaseTimeout)
	defer s.dl.Release()
	s.conn, s.r = c.Conn, c.reader
	s.phase = PhasePostTLS
	return s.sp.client.Upgrade(s)
}
