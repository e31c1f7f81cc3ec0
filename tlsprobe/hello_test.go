package tlsprobe

import (
	"crypto/tls"
	"errors"
	"net"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/tlsprobe/internal/probetest"
	"github.com/starttls-go/starttls/tlsprobe/internal/wire"
)

// parsedHello is a ClientHello read back from Marshal's bytes.
type parsedHello struct {
	recVersion, legacy uint16
	random, sid        []byte
	suites             []uint16
	compression        []byte
	hasExts            bool
	extOrder           []uint16
	sni                string
	groups             []uint16
	points             []byte
	sigAlgs            []uint16
	versions           []uint16
	pskModes           []byte
	keyShares          map[uint16][]byte
}

func parseClientHello(t *testing.T, rec []byte) *parsedHello {
	t.Helper()
	p := &parsedHello{keyShares: map[uint16][]byte{}}
	s := cryptobyte.String(rec)
	var typ uint8
	var body, msg cryptobyte.String
	if !s.ReadUint8(&typ) || typ != 22 || !s.ReadUint16(&p.recVersion) || !s.ReadUint16LengthPrefixed(&body) || !s.Empty() {
		t.Fatalf("bad record framing: %x", rec[:min(len(rec), 5)])
	}
	if !body.ReadUint8(&typ) || typ != 1 || !body.ReadUint24LengthPrefixed(&msg) || !body.Empty() {
		t.Fatalf("bad handshake framing")
	}
	var suites, exts cryptobyte.String
	if !msg.ReadUint16(&p.legacy) || !msg.ReadBytes(&p.random, 32) ||
		!msg.ReadUint8LengthPrefixed((*cryptobyte.String)(&p.sid)) ||
		!msg.ReadUint16LengthPrefixed(&suites) ||
		!msg.ReadUint8LengthPrefixed((*cryptobyte.String)(&p.compression)) {
		t.Fatal("truncated ClientHello")
	}
	for !suites.Empty() {
		var id uint16
		if !suites.ReadUint16(&id) {
			t.Fatal("odd cipher suite list")
		}
		p.suites = append(p.suites, id)
	}
	if msg.Empty() {
		return p
	}
	p.hasExts = true
	if !msg.ReadUint16LengthPrefixed(&exts) || !msg.Empty() {
		t.Fatal("bad extensions block")
	}
	for !exts.Empty() {
		var et uint16
		var data cryptobyte.String
		if !exts.ReadUint16(&et) || !exts.ReadUint16LengthPrefixed(&data) {
			t.Fatal("bad extension")
		}
		if slices.Contains(p.extOrder, et) {
			t.Fatalf("extension %d twice", et)
		}
		p.extOrder = append(p.extOrder, et)
		ok := true
		switch et {
		case 0:
			var list, name cryptobyte.String
			var nt uint8
			ok = data.ReadUint16LengthPrefixed(&list) && list.ReadUint8(&nt) && nt == 0 &&
				list.ReadUint16LengthPrefixed(&name) && list.Empty()
			p.sni = string(name)
		case 10:
			var list cryptobyte.String
			ok = data.ReadUint16LengthPrefixed(&list)
			for ok && !list.Empty() {
				var g uint16
				ok = list.ReadUint16(&g)
				p.groups = append(p.groups, g)
			}
		case 11:
			ok = data.ReadUint8LengthPrefixed((*cryptobyte.String)(&p.points))
		case 13:
			var list cryptobyte.String
			ok = data.ReadUint16LengthPrefixed(&list)
			for ok && !list.Empty() {
				var a uint16
				ok = list.ReadUint16(&a)
				p.sigAlgs = append(p.sigAlgs, a)
			}
		case 23:
		case 43:
			var list cryptobyte.String
			ok = data.ReadUint8LengthPrefixed(&list)
			for ok && !list.Empty() {
				var v uint16
				ok = list.ReadUint16(&v)
				p.versions = append(p.versions, v)
			}
		case 45:
			ok = data.ReadUint8LengthPrefixed((*cryptobyte.String)(&p.pskModes))
		case 51:
			var list cryptobyte.String
			ok = data.ReadUint16LengthPrefixed(&list)
			for ok && !list.Empty() {
				var g uint16
				var key cryptobyte.String
				ok = list.ReadUint16(&g) && list.ReadUint16LengthPrefixed(&key)
				p.keyShares[g] = key
			}
		default:
			t.Fatalf("unexpected extension %d", et)
		}
		if !ok || !data.Empty() {
			t.Fatalf("malformed extension %d", et)
		}
	}
	return p
}

func TestMarshal(t *testing.T) {
	for _, tc := range []struct {
		name string
		ch   ClientHello
	}{
		{"ssl3", ClientHello{Version: SSL30, Suites: []uint16{0x000A, 0x002F}, Groups: []uint16{0x17}, ServerName: "ignored.example"}},
		{"tls1.0", ClientHello{Version: TLS10, Suites: []uint16{0xC013}, Groups: []uint16{0x1D, 0x17}}},
		{"tls1.2 sni", ClientHello{Version: TLS12, Suites: suiteIDs(offerOrder), Groups: groupIDs(), ServerName: "mx.example.org"}},
		{"tls1.3 share", ClientHello{Version: TLS13, Suites: suiteIDs(tls13Suites), Groups: groupIDs(), KeyShareX25519: true, ServerName: "a.example"}},
		{"tls1.3 no share", ClientHello{Version: TLS13, Suites: []uint16{0x1301}, Groups: []uint16{0x17}}},
		{"no suites", ClientHello{Version: TLS12}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.ch.Marshal()
			p := parseClientHello(t, rec)
			wantRec := uint16(TLS10)
			if tc.ch.Version == SSL30 {
				wantRec = uint16(SSL30)
			}
			if p.recVersion != wantRec {
				t.Errorf("record version %#04x, want %#04x", p.recVersion, wantRec)
			}
			if want := uint16(min(tc.ch.Version, TLS12)); p.legacy != want {
				t.Errorf("legacy_version %#04x, want %#04x", p.legacy, want)
			}
			wantSuites := slices.Clone(tc.ch.Suites)
			if tc.ch.Version < TLS13 {
				wantSuites = append(wantSuites, 0x00FF)
			}
			if !slices.Equal(p.suites, wantSuites) {
				t.Errorf("suites %x, want %x", p.suites, wantSuites)
			}
			if string(p.compression) != "\x00" {
				t.Errorf("compression methods %x", p.compression)
			}
			if tc.ch.Version == SSL30 {
				if p.hasExts {
					t.Errorf("SSLv3 hello has extensions %v", p.extOrder)
				}
				return
			}
			if tc.ch.Version == TLS13 {
				if len(p.sid) != 32 {
					t.Errorf("TLS 1.3 session id of %d bytes, want 32 (compatibility mode)", len(p.sid))
				}
				if !slices.Equal(p.versions, []uint16{uint16(TLS13)}) {
					t.Errorf("supported_versions %x", p.versions)
				}
				if string(p.pskModes) != "\x01" {
					t.Errorf("psk_key_exchange_modes %x", p.pskModes)
				}
				if !slices.Contains(p.extOrder, 51) {
					t.Errorf("no key_share extension")
				}
				if tc.ch.KeyShareX25519 {
					if len(p.keyShares) != 1 || len(p.keyShares[0x1D]) != 32 {
						t.Errorf("key shares %x, want one 32-byte x25519 key", p.keyShares)
					}
				} else if len(p.keyShares) != 0 {
					t.Errorf("key shares %x, want none", p.keyShares)
				}
			} else {
				if len(p.sid) != 0 {
					t.Errorf("session id of %d bytes", len(p.sid))
				}
				for _, e := range []uint16{43, 45, 51} {
					if slices.Contains(p.extOrder, e) {
						t.Errorf("TLS 1.3 extension %d in a %v hello", e, tc.ch.Version)
					}
				}
			}
			if p.sni != tc.ch.ServerName || (tc.ch.ServerName == "") == slices.Contains(p.extOrder, 0) {
				t.Errorf("SNI %q (present %v), want %q", p.sni, slices.Contains(p.extOrder, 0), tc.ch.ServerName)
			}
			if !slices.Equal(p.groups, tc.ch.Groups) {
				t.Errorf("groups %x, want %x", p.groups, tc.ch.Groups)
			}
			if string(p.points) != "\x00" {
				t.Errorf("ec_point_formats %x", p.points)
			}
			if !slices.Equal(p.sigAlgs, wire.SigAlgs) {
				t.Errorf("signature_algorithms %x", p.sigAlgs)
			}
			if !slices.Contains(p.extOrder, 23) {
				t.Errorf("no extended_master_secret")
			}
			// Fresh randomness in each hello.
			if q := parseClientHello(t, tc.ch.Marshal()); string(q.random) == string(p.random) {
				t.Errorf("two hellos share their random")
			}
		})
	}
}

// helloToGo sends ch.Marshal() to a crypto/tls server over a pipe and
// returns the server's answer and the hello the server saw.
func helloToGo(t *testing.T, cfg *tls.Config, ch ClientHello) (*ServerHello, *tls.ClientHelloInfo, error) {
	t.Helper()
	cfg = cfg.Clone()
	var info *tls.ClientHelloInfo
	var mu sync.Mutex
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		mu.Lock()
		defer mu.Unlock()
		info = h
		return nil, nil
	}
	cli, srv := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	_ = cli.SetDeadline(deadline)
	_ = srv.SetDeadline(deadline)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = tls.Server(srv, cfg).Handshake()
		_ = srv.Close()
	}()
	defer func() {
		_ = cli.Close()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("crypto/tls server did not stop")
		}
	}()
	werr := make(chan error, 1)
	go func() {
		_, err := cli.Write(ch.Marshal())
		werr <- err
	}()
	sh, err := ReadServerHello(cli)
	if e := <-werr; e != nil && err == nil {
		t.Fatalf("writing the hello: %v", e)
	}
	mu.Lock()
	defer mu.Unlock()
	return sh, info, err
}

func TestMarshalAcceptedByCryptoTLS(t *testing.T) {
	leaf := probetest.Leaf(t, certs.ECDSAP256)
	base := &tls.Config{Certificates: []tls.Certificate{leaf.TLS}, MinVersion: tls.VersionTLS10}
	withCurves := func(c ...tls.CurveID) *tls.Config {
		cfg := base.Clone()
		cfg.CurvePreferences = c
		return cfg
	}
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		ch   ClientHello
		want ServerHello
	}{
		{"tls1.2", base, ClientHello{Version: TLS12, Suites: []uint16{0x0005, 0xC02B}, Groups: []uint16{0x17}, ServerName: "localhost"},
			ServerHello{Version: TLS12, Suite: 0xC02B}},
		{"tls1.2 cbc", base, ClientHello{Version: TLS12, Suites: []uint16{0xC009}, Groups: []uint16{0x1D}},
			ServerHello{Version: TLS12, Suite: 0xC009}},
		{"tls1.0", base, ClientHello{Version: TLS10, Suites: []uint16{0xC00A}, Groups: []uint16{0x17}},
			ServerHello{Version: TLS10, Suite: 0xC00A}},
		{"tls1.1", base, ClientHello{Version: TLS11, Suites: []uint16{0xC009}, Groups: []uint16{0x17}},
			ServerHello{Version: TLS11, Suite: 0xC009}},
		{"tls1.3 x25519 share", withCurves(tls.X25519), ClientHello{Version: TLS13, Suites: []uint16{0x1302}, Groups: []uint16{0x1D}, KeyShareX25519: true, ServerName: "localhost"},
			ServerHello{Version: TLS13, Suite: 0x1302, Group: 0x1D}},
		{"tls1.3 hrr no share", withCurves(tls.CurveP256), ClientHello{Version: TLS13, Suites: []uint16{0x1301}, Groups: []uint16{0x17}},
			ServerHello{Version: TLS13, Suite: 0x1301, Group: 0x17, HelloRetry: true}},
		{"tls1.3 hrr other group", withCurves(tls.CurveP384), ClientHello{Version: TLS13, Suites: []uint16{0x1301}, Groups: []uint16{0x1D, 0x18}, KeyShareX25519: true},
			ServerHello{Version: TLS13, Suite: 0x1301, Group: 0x18, HelloRetry: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh, info, err := helloToGo(t, tc.cfg, tc.ch)
			if err != nil {
				t.Fatalf("ReadServerHello: %v", err)
			}
			got := *sh
			got.Extensions = nil // which ones crypto/tls sends is its business
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ServerHello %+v, want %+v", got, tc.want)
			}
			if info == nil {
				t.Fatal("server saw no hello")
			}
			wantSuites := slices.Clone(tc.ch.Suites)
			if tc.ch.Version < TLS13 {
				wantSuites = append(wantSuites, 0x00FF)
			}
			if !slices.Equal(info.CipherSuites, wantSuites) {
				t.Errorf("server saw suites %x, want %x", info.CipherSuites, wantSuites)
			}
			var curves []uint16
			for _, c := range info.SupportedCurves {
				curves = append(curves, uint16(c))
			}
			if !slices.Equal(curves, tc.ch.Groups) {
				t.Errorf("server saw groups %x, want %x", curves, tc.ch.Groups)
			}
			if info.ServerName != tc.ch.ServerName {
				t.Errorf("server saw SNI %q, want %q", info.ServerName, tc.ch.ServerName)
			}
			if tc.ch.Version == TLS13 && !slices.Equal(info.SupportedVersions, []uint16{tls.VersionTLS13}) {
				t.Errorf("server saw versions %x", info.SupportedVersions)
			}
		})
	}

	t.Run("declined", func(t *testing.T) {
		for _, ch := range []ClientHello{
			{Version: TLS12, Suites: []uint16{0x0004, 0x0005}, Groups: []uint16{0x17}}, // RC4 only
			{Version: SSL30, Suites: []uint16{0x000A}},
			{Version: TLS13, Suites: []uint16{0x1301}, Groups: []uint16{0x1E}}, // x448 only
		} {
			cfg := base.Clone()
			cfg.MinVersion = tls.VersionTLS12
			_, _, err := helloToGo(t, cfg, ch)
			var a Alert
			if !errors.Is(err, ErrDeclined) || !errors.As(err, &a) || a.Level != 2 {
				t.Errorf("%v %x: err = %v, want ErrDeclined with a fatal alert", ch.Version, ch.Suites, err)
			}
		}
	})
}
