package active

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// VulnResult is an active probe's verdict and what the server did.
type VulnResult struct {
	Vulnerable bool
	Evidence   string
}

// CloseNotify sends an encrypted close_notify and closes the connection.
// A server that sees a bare hang-up may drop the session from its cache
// (OpenSSL does), so the resumption probes close politely.
func (c *Client12) CloseNotify() error {
	err := c.rc.write(tlsprobe.RecordAlert, []byte{1, tlsprobe.AlertCloseNotify})
	return errors.Join(err, c.rc.conn.Close())
}

// Renegotiate sends a ClientHello on the established connection, encrypted,
// with renegotiation_info carrying the client's verify_data (RFC 5746 §3.5),
// and reads until the server answers: a ServerHello means it renegotiates
// at a client's request. Application data the server sends meanwhile (a
// greeting after implicit TLS) is skipped, at most 16 records.
func (c *Client12) Renegotiate(ctx context.Context) (VulnResult, error) {
	conn := c.rc.conn
	stop := wire.Bind(ctx, conn)
	defer stop()
	h := newHello12(uint16(tlsprobe.TLS12), c.cfg.Suites, c.cfg.ServerName)
	h.renegInfo = c.ClientVerify
	if err := c.rc.write(tlsprobe.RecordHandshake, h.marshal()); err != nil {
		return VulnResult{Evidence: fmt.Sprintf("the server closed the connection before the renegotiation ClientHello (%v)", err)}, nil
	}
	for i := 0; i < 16; i++ {
		rec, err := c.rc.read()
		var ne net.Error
		switch {
		case errors.Is(err, io.EOF) || wire.IsReset(err):
			return VulnResult{Evidence: "the server closed the connection after the renegotiation ClientHello"}, nil
		case errors.As(err, &ne) && ne.Timeout():
			return VulnResult{Evidence: "no ServerHello within the deadline after the renegotiation ClientHello"}, nil
		case err != nil:
			return VulnResult{}, err
		}
		switch rec.Type {
		case tlsprobe.RecordApplicationData:
			continue
		case tlsprobe.RecordAlert:
			a, err := tlsprobe.ParseAlert(rec.Body)
			if err != nil {
				return VulnResult{}, err
			}
			return VulnResult{Evidence: fmt.Sprintf("the server answered the renegotiation ClientHello with alert %s", tlsprobe.AlertName(a.Description))}, nil
		case tlsprobe.RecordHandshake:
			if len(rec.Body) == 0 || rec.Body[0] != 2 {
				return VulnResult{}, fmt.Errorf("%w: handshake record %x after the renegotiation ClientHello", tlsprobe.ErrNotTLS, rec.Body[:min(len(rec.Body), 4)])
			}
			return VulnResult{Vulnerable: true, Evidence: "the server answered a client-initiated renegotiation (TLS 1.2 ClientHello on the established connection) with a ServerHello"}, nil
		default:
			return VulnResult{}, fmt.Errorf("%w: record type %d after the renegotiation ClientHello", tlsprobe.ErrNotTLS, rec.Type)
		}
	}
	return VulnResult{}, fmt.Errorf("%w: 16 records without an answer to the renegotiation ClientHello", tlsprobe.ErrNotTLS)
}

// ClientRenegotiation completes a TLS 1.2 handshake with the minimal client
// and asks to renegotiate. One connection.
func ClientRenegotiation(ctx context.Context, dial tlsprobe.Dialer, o tlsprobe.Options) (VulnResult, error) {
	o = o.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	conn, err := dial(ctx)
	if err != nil {
		return VulnResult{}, fmt.Errorf("dial: %w", err)
	}
	defer conn.Close()
	c, err := Handshake12(ctx, conn, Config12{ServerName: o.ServerName})
	if err != nil {
		return VulnResult{}, err
	}
	return c.Renegotiate(ctx)
}
