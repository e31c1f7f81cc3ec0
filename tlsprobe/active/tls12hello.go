package active

import (
	"crypto/rand"
	"fmt"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls/tlsprobe"
	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// Extension numbers the TLS 1.2 client and the active probes use.
const (
	extServerName    uint16 = 0
	extGroups        uint16 = 10
	extPointFormats  uint16 = 11
	extSigAlgs       uint16 = 13
	extHeartbeat     uint16 = 15 // RFC 6520
	extSessionTicket uint16 = 35 // RFC 5077
	extRenegInfo     uint16 = 0xff01
)

// hello12 is a TLS 1.0-1.2 ClientHello with the extensions the active
// probes need; marshal gives the handshake message (without record header).
type hello12 struct {
	version    uint16
	random     [32]byte
	sessionID  []byte
	suites     []uint16
	groups     []uint16
	serverName string
	heartbeat  bool // offer heartbeat, peer_allowed_to_send
	ticketExt  bool // send session_ticket (with ticket, possibly empty)
	ticket     []byte
	// renegInfo is the renegotiation_info content: empty on a first
	// handshake, the client's previous verify_data on a renegotiation.
	renegInfo []byte
}

func newHello12(version uint16, suites []uint16, serverName string) *hello12 {
	h := &hello12{version: version, suites: suites, serverName: serverName,
		groups: []uint16{0x001D, 0x0017, 0x0018, 0x0019}}
	_, _ = rand.Read(h.random[:])
	return h
}

func (h *hello12) marshal() []byte {
	var b cryptobyte.Builder
	b.AddUint8(1)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(h.version)
		b.AddBytes(h.random[:])
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.sessionID) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, s := range h.suites {
				b.AddUint16(s)
			}
		})
		b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			ext := func(typ uint16, body func(*cryptobyte.Builder)) {
				b.AddUint16(typ)
				b.AddUint16LengthPrefixed(body)
			}
			if h.serverName != "" {
				ext(extServerName, func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						b.AddUint8(0)
						b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes([]byte(h.serverName)) })
					})
				})
			}
			ext(extGroups, func(b *cryptobyte.Builder) {
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
					for _, g := range h.groups {
						b.AddUint16(g)
					}
				})
			})
			ext(extPointFormats, func(b *cryptobyte.Builder) {
				b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddUint8(0) })
			})
			if h.version >= uint16(tlsprobe.TLS12) {
				ext(extSigAlgs, func(b *cryptobyte.Builder) {
					b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
						for _, s := range wire.SigAlgs {
							b.AddUint16(s)
						}
					})
				})
			}
			if h.heartbeat {
				ext(extHeartbeat, func(b *cryptobyte.Builder) { b.AddUint8(1) })
			}
			if h.ticketExt {
				ext(extSessionTicket, func(b *cryptobyte.Builder) { b.AddBytes(h.ticket) })
			}
			ext(extRenegInfo, func(b *cryptobyte.Builder) {
				b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(h.renegInfo) })
			})
		})
	})
	return b.BytesOrPanic()
}

// serverHello12 is a parsed TLS 1.0-1.2 ServerHello.
type serverHello12 struct {
	version   uint16
	random    []byte
	sessionID []byte
	suite     uint16
	exts      map[uint16][]byte
}

// parseServerHello12 reads a ServerHello handshake message (header included).
func parseServerHello12(msg []byte) (*serverHello12, error) {
	s := cryptobyte.String(msg)
	var typ uint8
	var body cryptobyte.String
	if !s.ReadUint8(&typ) || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() {
		return nil, fmt.Errorf("%w: truncated handshake message", tlsprobe.ErrNotTLS)
	}
	if typ != 2 {
		return nil, fmt.Errorf("%w: handshake message %d where a ServerHello was due", tlsprobe.ErrNotTLS, typ)
	}
	sh := &serverHello12{exts: map[uint16][]byte{}}
	var comp uint8
	if !body.ReadUint16(&sh.version) || !body.ReadBytes(&sh.random, 32) ||
		!body.ReadUint8LengthPrefixed((*cryptobyte.String)(&sh.sessionID)) || len(sh.sessionID) > 32 ||
		!body.ReadUint16(&sh.suite) || !body.ReadUint8(&comp) {
		return nil, fmt.Errorf("%w: truncated ServerHello", tlsprobe.ErrNotTLS)
	}
	if body.Empty() {
		return sh, nil
	}
	var exts cryptobyte.String
	if !body.ReadUint16LengthPrefixed(&exts) || !body.Empty() {
		return nil, fmt.Errorf("%w: bad ServerHello extensions", tlsprobe.ErrNotTLS)
	}
	for !exts.Empty() {
		var typ uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&typ) || !exts.ReadUint16LengthPrefixed(&data) {
			return nil, fmt.Errorf("%w: bad ServerHello extension", tlsprobe.ErrNotTLS)
		}
		if _, dup := sh.exts[typ]; dup {
			return nil, fmt.Errorf("%w: ServerHello extension %d twice", tlsprobe.ErrNotTLS, typ)
		}
		sh.exts[typ] = data
	}
	return sh, nil
}

// firstFlight is the server's answer to a ClientHello up to ServerHelloDone.
type firstFlight struct {
	hello       *serverHello12
	certs       [][]byte // DER, leaf first
	keyExchange []byte   // ServerKeyExchange body, nil without one
	certRequest bool
	messages    [][]byte // every message, for the transcript
}

// readFirstFlight reads ServerHello ... ServerHelloDone. It stops early,
// with full false, when the server resumes a session (the next record is
// then a NewSessionTicket or ChangeCipherSpec).
func readFirstFlight(rc *recordConn, resuming []byte) (ff *firstFlight, full bool, err error) {
	ff = &firstFlight{}
	for i := 0; i < 8; i++ {
		msg, err := rc.readHandshake()
		if err != nil {
			return ff, false, err
		}
		ff.messages = append(ff.messages, msg)
		body := msg[4:]
		switch {
		case i == 0:
			if ff.hello, err = parseServerHello12(msg); err != nil {
				return ff, false, err
			}
			if len(resuming) > 0 && string(ff.hello.sessionID) == string(resuming) {
				return ff, false, nil
			}
		case msg[0] == 11:
			if ff.certs, err = parseCertificateMsg(body); err != nil {
				return ff, false, err
			}
		case msg[0] == 12:
			ff.keyExchange = body
		case msg[0] == 13:
			ff.certRequest = true
		case msg[0] == 14:
			return ff, true, nil
		default:
			return ff, false, fmt.Errorf("%w: handshake message %d in the server's first flight", tlsprobe.ErrNotTLS, msg[0])
		}
	}
	return ff, false, fmt.Errorf("%w: no ServerHelloDone in the first flight", tlsprobe.ErrNotTLS)
}

func parseCertificateMsg(body []byte) ([][]byte, error) {
	s := cryptobyte.String(body)
	var list cryptobyte.String
	if !s.ReadUint24LengthPrefixed(&list) || !s.Empty() {
		return nil, fmt.Errorf("%w: bad Certificate message", tlsprobe.ErrNotTLS)
	}
	var out [][]byte
	for !list.Empty() {
		var c cryptobyte.String
		if !list.ReadUint24LengthPrefixed(&c) || len(c) == 0 {
			return nil, fmt.Errorf("%w: bad certificate entry", tlsprobe.ErrNotTLS)
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseNewSessionTicket reads a TLS 1.2 NewSessionTicket handshake message
// (RFC 5077 §3.3, header included): the lifetime hint in seconds and the
// ticket.
func ParseNewSessionTicket(msg []byte) (lifetime uint32, ticket []byte, err error) {
	s := cryptobyte.String(msg)
	var typ uint8
	var body cryptobyte.String
	if !s.ReadUint8(&typ) || !s.ReadUint24LengthPrefixed(&body) || !s.Empty() || typ != 4 {
		return 0, nil, fmt.Errorf("%w: not a NewSessionTicket message", tlsprobe.ErrNotTLS)
	}
	if !body.ReadUint32(&lifetime) || !body.ReadUint16LengthPrefixed((*cryptobyte.String)(&ticket)) || !body.Empty() {
		return 0, nil, fmt.Errorf("%w: truncated NewSessionTicket", tlsprobe.ErrNotTLS)
	}
	return lifetime, ticket, nil
}
