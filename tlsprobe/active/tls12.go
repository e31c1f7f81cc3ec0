package active

import (
	"context"
	"crypto"
	"crypto/ecdh"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"net"
	"slices"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// suite12 is a TLS 1.2 suite the minimal client can complete: AES-GCM with
// ECDHE or RSA key exchange.
type suite12 struct {
	id     uint16
	ecdhe  bool
	keyLen int
	hash   crypto.Hash // of the PRF
}

// suites12 are the suites the minimal TLS 1.2 client speaks, in its order.
var suites12 = []suite12{
	{0xC02B, true, 16, crypto.SHA256},  // ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
	{0xC02F, true, 16, crypto.SHA256},  // ECDHE_RSA_WITH_AES_128_GCM_SHA256
	{0xC02C, true, 32, crypto.SHA384},  // ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
	{0xC030, true, 32, crypto.SHA384},  // ECDHE_RSA_WITH_AES_256_GCM_SHA384
	{0x009C, false, 16, crypto.SHA256}, // RSA_WITH_AES_128_GCM_SHA256
	{0x009D, false, 32, crypto.SHA384}, // RSA_WITH_AES_256_GCM_SHA384
}

func suite12ByID(id uint16) (suite12, bool) {
	for _, s := range suites12 {
		if s.id == id {
			return s, true
		}
	}
	return suite12{}, false
}

func suite12IDs() []uint16 {
	ids := make([]uint16, len(suites12))
	for i, s := range suites12 {
		ids[i] = s.id
	}
	return ids
}

// Speaks12 reports whether the minimal TLS 1.2 client can complete a
// handshake with the suite named (AES-GCM with ECDHE or RSA key exchange):
// a server that accepts none of them cannot be probed with it.
func Speaks12(name string) bool {
	id, ok := tlsprobe.SuiteID(name)
	if !ok {
		return false
	}
	_, ok = suite12ByID(id)
	return ok
}

// errCCS is readHandshake's way of saying a ChangeCipherSpec came instead.
var errCCS = errors.New("ChangeCipherSpec")

// prf12 is the TLS 1.2 PRF (RFC 5246 §5) with hash h.
func prf12(h func() hash.Hash, secret []byte, label string, seed []byte, n int) []byte {
	seed = append([]byte(label), seed...)
	mac := hmac.New(h, secret)
	out := make([]byte, 0, n+64)
	a := seed
	for len(out) < n {
		mac.Reset()
		mac.Write(a)
		a = mac.Sum(nil)
		mac.Reset()
		mac.Write(a)
		mac.Write(seed)
		out = mac.Sum(out)
	}
	return out[:n]
}

func hashFunc(h crypto.Hash) func() hash.Hash {
	if h == crypto.SHA384 {
		return sha512.New384
	}
	return sha256.New
}

// Session12 is what a completed TLS 1.2 handshake leaves: enough to resume
// it and to renegotiate on it.
type Session12 struct {
	SessionID []byte // from the ServerHello; empty when the server issued none
	Ticket    []byte // from a NewSessionTicket; nil when none came
	// TicketIssued is true when a NewSessionTicket came (possibly empty).
	TicketIssued   bool
	TicketLifetime uint32 // its lifetime hint, seconds
	Resumed        bool   // the handshake was abbreviated
	Suite          uint16
	master         []byte
}

// Config12 tunes one TLS 1.2 handshake of the minimal client.
type Config12 struct {
	ServerName string
	Suites     []uint16 // default: every suite it speaks
	// Tickets sends the session_ticket extension (empty unless Resume has a ticket).
	Tickets bool
	// Resume offers this session: its ticket when it has one and Tickets
	// is set, else its session id.
	Resume *Session12
}

// Client12 is a TLS 1.2 connection made by the minimal client. It exists
// for the probes (resumption, renegotiation): it does not verify the
// server's certificate or key-exchange signature, only its Finished.
type Client12 struct {
	rc      *recordConn
	cfg     Config12
	suite   suite12
	hs      []byte // handshake transcript
	crandom []byte
	srandom []byte
	// Session is the handshake's outcome.
	Session *Session12
	// ClientVerify and ServerVerify are the Finished verify_data (RFC 5746).
	ClientVerify, ServerVerify []byte
	// pendingOut and pendingIn take effect at each side's ChangeCipherSpec.
	pendingOut, pendingIn *gcmState
}

// Handshake12 runs a TLS 1.2 handshake on conn within ctx.
func Handshake12(ctx context.Context, conn net.Conn, cfg Config12) (*Client12, error) {
	stop := wire.Bind(ctx, conn)
	defer stop()
	if len(cfg.Suites) == 0 {
		cfg.Suites = suite12IDs()
	}
	c := &Client12{rc: &recordConn{conn: conn, version: uint16(tlsprobe.TLS12)}, cfg: cfg}
	h := newHello12(uint16(tlsprobe.TLS12), cfg.Suites, cfg.ServerName)
	h.ticketExt = cfg.Tickets
	var resuming []byte
	if r := cfg.Resume; r != nil {
		switch {
		case cfg.Tickets && len(r.Ticket) > 0:
			h.ticket = r.Ticket
			// A random session id comes back echoed when the ticket is taken (RFC 5077 §3.4).
			h.sessionID = make([]byte, 32)
			_, _ = rand.Read(h.sessionID)
		case len(r.SessionID) > 0:
			h.sessionID = r.SessionID
		}
		resuming = h.sessionID
	}
	c.crandom = h.random[:]
	msg := h.marshal()
	c.hs = append(c.hs, msg...)
	c.rc.version = uint16(tlsprobe.TLS10) // the first record's version, for old servers
	if err := c.rc.write(tlsprobe.RecordHandshake, msg); err != nil {
		return nil, wire.DeclinedIfReset(err)
	}
	c.rc.version = uint16(tlsprobe.TLS12)
	ff, full, err := readFirstFlight(c.rc, resuming)
	if err != nil {
		err = declinedIfHangup(err)
		if errors.Is(err, tlsprobe.ErrDeclined) {
			err = fmt.Errorf("%w (the probe client offers TLS 1.2 with AES-GCM and ECDHE or RSA key exchange only)", err)
		}
		return nil, err
	}
	for _, m := range ff.messages {
		c.hs = append(c.hs, m...)
	}
	if ff.hello.version != uint16(tlsprobe.TLS12) {
		return nil, fmt.Errorf("%w: server chose %s", tlsprobe.ErrDeclined, tlsprobe.Version(ff.hello.version))
	}
	s, ok := suite12ByID(ff.hello.suite)
	if !ok || !slices.Contains(cfg.Suites, s.id) {
		return nil, fmt.Errorf("%w: server chose suite %s", tlsprobe.ErrNotTLS, tlsprobe.SuiteName(ff.hello.suite))
	}
	c.suite = s
	c.srandom = ff.hello.random
	c.Session = &Session12{SessionID: ff.hello.sessionID, Suite: s.id}
	if !full {
		c.Session.Resumed = true
		c.Session.master = cfg.Resume.master
		err = c.abbreviated()
	} else {
		err = c.full(ff)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// declinedIfHangup is wire.DeclinedIfReset for errors met while reading.
func declinedIfHangup(err error) error {
	var a tlsprobe.Alert
	if errors.As(err, &a) {
		return fmt.Errorf("%w: %w", tlsprobe.ErrDeclined, a)
	}
	return wire.DeclinedIfReset(err)
}

func (c *Client12) full(ff *firstFlight) error {
	if len(ff.certs) == 0 {
		return fmt.Errorf("%w: no server certificate", tlsprobe.ErrNotTLS)
	}
	var pms, ckx []byte
	if c.suite.ecdhe {
		var err error
		if pms, ckx, err = ecdheExchange(ff.keyExchange); err != nil {
			return err
		}
	} else {
		pub, err := rsaKeyOf(ff.certs[0])
		if err != nil {
			return err
		}
		pms = make([]byte, 48)
		_, _ = rand.Read(pms[2:])
		pms[0], pms[1] = 3, 3
		if pub.Size() < 64 {
			return fmt.Errorf("%w: %d-bit RSA key", tlsprobe.ErrNotTLS, pub.Size()*8)
		}
		// PKCS#1 v1.5 block type 2 by hand (RFC 8017 §7.2.1): the standard
		// library deprecates it, and TLS 1.2 RSA key exchange is nothing else.
		ckx = binaryPrefixed16(rawRSA(pub, cat([]byte{0, 2}, nonZero(pub.Size()-51), []byte{0}, pms)))
	}
	if ff.certRequest {
		// An empty Certificate: the probe has no client certificate.
		if err := c.sendHandshake(11, []byte{0, 0, 0}); err != nil {
			return err
		}
	}
	if err := c.sendHandshake(16, ckx); err != nil {
		return err
	}
	c.Session.master = prf12(hashFunc(c.suite.hash), pms, "master secret", append(append([]byte{}, c.crandom...), c.srandom...), 48)
	if err := c.keys(); err != nil {
		return err
	}
	if err := c.sendFinished(); err != nil {
		return err
	}
	return c.readServerFinish()
}

func (c *Client12) abbreviated() error {
	if c.Session.master == nil {
		return fmt.Errorf("%w: server resumed a session the client has no secret for", tlsprobe.ErrNotTLS)
	}
	if err := c.keys(); err != nil {
		return err
	}
	if err := c.readServerFinish(); err != nil {
		return err
	}
	return c.sendFinished()
}

func binaryPrefixed16(b []byte) []byte {
	return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...)
}

// keys derives both directions' AES-GCM states from the master secret;
// they are switched on at each side's ChangeCipherSpec.
func (c *Client12) keys() error {
	n := c.suite.keyLen
	kb := prf12(hashFunc(c.suite.hash), c.Session.master, "key expansion", append(append([]byte{}, c.srandom...), c.crandom...), 2*n+8)
	out, err := newGCM(kb[:n], kb[2*n:2*n+4])
	if err != nil {
		return err
	}
	in, err := newGCM(kb[n:2*n], kb[2*n+4:2*n+8])
	if err != nil {
		return err
	}
	c.pendingOut, c.pendingIn = out, in
	return nil
}

func (c *Client12) sendHandshake(typ uint8, body []byte) error {
	msg := append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	c.hs = append(c.hs, msg...)
	return wire.DeclinedIfReset(c.rc.write(tlsprobe.RecordHandshake, msg))
}

func (c *Client12) verifyData(label string) []byte {
	h := hashFunc(c.suite.hash)()
	h.Write(c.hs)
	return prf12(hashFunc(c.suite.hash), c.Session.master, label, h.Sum(nil), 12)
}

func (c *Client12) sendFinished() error {
	if err := c.rc.write(tlsprobe.RecordChangeCipherSpec, []byte{1}); err != nil {
		return wire.DeclinedIfReset(err)
	}
	c.rc.out = c.pendingOut
	c.ClientVerify = c.verifyData("client finished")
	return c.sendHandshake(20, c.ClientVerify)
}

// readServerFinish reads [NewSessionTicket] ChangeCipherSpec Finished and
// checks the Finished.
func (c *Client12) readServerFinish() error {
	for i := 0; i < 3; i++ {
		msg, err := c.rc.readHandshake()
		switch {
		case errors.Is(err, errCCS):
			c.rc.in = c.pendingIn
			continue
		case err != nil:
			return declinedIfHangup(err)
		}
		switch {
		case msg[0] == 4 && c.rc.in == nil:
			life, ticket, err := ParseNewSessionTicket(msg)
			if err != nil {
				return err
			}
			c.Session.TicketIssued, c.Session.TicketLifetime, c.Session.Ticket = true, life, ticket
			c.hs = append(c.hs, msg...)
		case msg[0] == 20 && c.rc.in != nil:
			want := c.verifyData("server finished")
			if !hmac.Equal(msg[4:], want) {
				return fmt.Errorf("%w: the server's Finished does not verify", tlsprobe.ErrNotTLS)
			}
			c.ServerVerify = want
			c.hs = append(c.hs, msg...)
			return nil
		default:
			return fmt.Errorf("%w: handshake message %d where the server's Finished was due", tlsprobe.ErrNotTLS, msg[0])
		}
	}
	return fmt.Errorf("%w: no Finished from the server", tlsprobe.ErrNotTLS)
}

// ecdheExchange reads a ServerKeyExchange for a named curve and returns
// the premaster secret and the ClientKeyExchange body. The signature is
// not checked: the probe judges the server, not the other way round.
func ecdheExchange(ske []byte) (pms, ckx []byte, err error) {
	s := cryptobyte.String(ske)
	var curveType uint8
	var curve uint16
	var point []byte
	if !s.ReadUint8(&curveType) || curveType != 3 || !s.ReadUint16(&curve) || !s.ReadUint8LengthPrefixed((*cryptobyte.String)(&point)) {
		return nil, nil, fmt.Errorf("%w: ServerKeyExchange is not for a named curve", tlsprobe.ErrNotTLS)
	}
	var c ecdh.Curve
	switch curve {
	case 0x001D:
		c = ecdh.X25519()
	case 0x0017:
		c = ecdh.P256()
	case 0x0018:
		c = ecdh.P384()
	case 0x0019:
		c = ecdh.P521()
	default:
		return nil, nil, fmt.Errorf("%w: server chose curve %s, which was not offered", tlsprobe.ErrNotTLS, tlsprobe.GroupName(curve))
	}
	peer, err := c.NewPublicKey(point)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: server's key share: %v", tlsprobe.ErrNotTLS, err)
	}
	priv, err := c.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	if pms, err = priv.ECDH(peer); err != nil {
		return nil, nil, fmt.Errorf("%w: ECDH: %v", tlsprobe.ErrNotTLS, err)
	}
	pub := priv.PublicKey().Bytes()
	return pms, append([]byte{byte(len(pub))}, pub...), nil
}

func rsaKeyOf(der []byte) (*rsa.PublicKey, error) {
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: server certificate: %v", tlsprobe.ErrNotTLS, err)
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: RSA key exchange with a %T certificate", tlsprobe.ErrNotTLS, cert.PublicKey)
	}
	return pub, nil
}

// Close closes the connection without a close_notify: probes end abruptly.
func (c *Client12) Close() error { return c.rc.conn.Close() }
