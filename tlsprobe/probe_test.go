package tlsprobe

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"reflect"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
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

func names(ss []Suite) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.Name
	}
	return out
}

func sameSet(got, want []string) bool {
	g, w := slices.Clone(got), slices.Clone(want)
	sort.Strings(g)
	sort.Strings(w)
	return slices.Equal(g, w)
}

func wantVersions(on ...Version) map[string]bool {
	m := map[string]bool{}
	for _, v := range AllVersions {
		m[v.Key()] = slices.Contains(on, v)
	}
	return m
}

func checkResult(t *testing.T, res *Result, versions map[string]bool, suites map[string][]string, groups []string) {
	t.Helper()
	if len(res.Errors) > 0 {
		t.Errorf("probe errors: %q", res.Errors)
	}
	if fmt.Sprint(res.Versions) != fmt.Sprint(versions) {
		t.Errorf("versions %v, want %v", res.Versions, versions)
	}
	for k, on := range versions {
		if !on {
			if len(res.Suites[k]) != 0 {
				t.Errorf("%s: suites %q for a version not accepted", k, res.Suites[k])
			}
			continue
		}
		if !sameSet(res.Suites[k], suites[k]) {
			t.Errorf("%s suites %q, want %q", k, res.Suites[k], suites[k])
		}
	}
	if groups != nil && !sameSet(res.Groups, groups) {
		t.Errorf("groups %q, want %q", res.Groups, groups)
	}
}

var goTLS13Suites = []string{"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}

func TestProbeGoServer(t *testing.T) {
	ecdsa := probetest.Leaf(t, certs.ECDSAP256)
	rsa := probetest.Leaf(t, certs.RSA2048)
	opts := Options{Timeout: 5 * time.Second, Concurrency: 4, ServerName: "127.0.0.1"}

	t.Run("tls1.2+1.3", func(t *testing.T) {
		dial := probetest.GoServer(t, &tls.Config{
			Certificates: []tls.Certificate{ecdsa.TLS},
			MinVersion:   tls.VersionTLS12, MaxVersion: tls.VersionTLS13,
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305},
			CurvePreferences: []tls.CurveID{tls.CurveP384, tls.X25519},
		})
		res, err := Probe(probetest.Ctx(t), dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res, wantVersions(TLS12, TLS13), map[string][]string{
			"tls1.2": {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
			"tls1.3": goTLS13Suites,
		}, []string{"secp384r1", "x25519"})
	})

	t.Run("tls1.2 only rsa", func(t *testing.T) {
		dial := probetest.GoServer(t, &tls.Config{
			Certificates: []tls.Certificate{rsa.TLS},
			MinVersion:   tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
				tls.TLS_RSA_WITH_AES_256_GCM_SHA384, tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA},
			CurvePreferences: []tls.CurveID{tls.CurveP256, tls.CurveP521},
		})
		res, err := Probe(probetest.Ctx(t), dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res, wantVersions(TLS12), map[string][]string{
			"tls1.2": {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
				"TLS_RSA_WITH_AES_256_GCM_SHA384", "TLS_RSA_WITH_3DES_EDE_CBC_SHA"},
		}, []string{"secp256r1", "secp521r1"})
	})

	t.Run("tls1.0+1.1", func(t *testing.T) {
		dial := probetest.GoServer(t, &tls.Config{
			Certificates: []tls.Certificate{ecdsa.TLS},
			MinVersion:   tls.VersionTLS10, MaxVersion: tls.VersionTLS11,
			CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA},
			CurvePreferences: []tls.CurveID{tls.X25519},
		})
		ctx := probetest.Ctx(t)
		vs, err := Versions(ctx, dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := map[Version]bool{SSL30: false, TLS10: true, TLS11: true, TLS12: false, TLS13: false}
		if fmt.Sprint(vs) != fmt.Sprint(want) {
			t.Fatalf("Versions = %v, want %v", vs, want)
		}
		for _, v := range []Version{TLS10, TLS11} {
			ss, err := Suites(ctx, dial, v, opts)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(names(ss), []string{"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"}) {
				t.Errorf("%v suites %q", v, names(ss))
			}
		}
		// Neither TLS 1.2 nor 1.3: the TLS 1.2 group probe finds nothing.
		gs, err := Groups(ctx, dial, false, opts)
		if err != nil || len(gs) != 0 {
			t.Errorf("Groups = %v, %v; want none", gs, err)
		}
	})

	t.Run("groups tls1.2 path", func(t *testing.T) {
		dial := probetest.GoServer(t, &tls.Config{
			Certificates: []tls.Certificate{ecdsa.TLS},
			MinVersion:   tls.VersionTLS12, MaxVersion: tls.VersionTLS13,
			CurvePreferences: []tls.CurveID{tls.CurveP256, tls.X25519},
		})
		for _, tls13 := range []bool{false, true} {
			gs, err := Groups(probetest.Ctx(t), dial, tls13, opts)
			if err != nil {
				t.Fatal(err)
			}
			got := []string{}
			for _, g := range gs {
				got = append(got, g.Name)
			}
			if !sameSet(got, []string{"secp256r1", "x25519"}) {
				t.Errorf("tls13=%v: groups %q", tls13, got)
			}
		}
	})
}

func TestProbeDeadServer(t *testing.T) {
	// A listener that accepts and says nothing: every probe times out, and
	// the run still returns in bounded time with errors, not "declined".
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	start := time.Now()
	vs, err := Versions(probetest.Ctx(t), probetest.TCPDialer(l.Addr().String()), Options{Timeout: 300 * time.Millisecond, Concurrency: 5})
	if el := time.Since(start); el > 10*time.Second {
		t.Fatalf("Versions took %v", el)
	}
	if err == nil || len(vs) != 0 {
		t.Fatalf("Versions = %v, %v; want no answers and an error", vs, err)
	}
}

func TestProbeOpenSSL(t *testing.T) {
	peer.Require(t, "openssl") // skips without it, fails under CI=true
	ecdsa := probetest.Leaf(t, certs.ECDSAP256)
	rsa := probetest.Leaf(t, certs.RSA2048)
	opts := Options{Timeout: 5 * time.Second, Concurrency: 4}

	t.Run("tls1.2 ecdsa", func(t *testing.T) {
		dial := probetest.OpenSSLServer(t, ecdsa, "-tls1_2",
			"-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-SHA:ECDHE-ECDSA-CHACHA20-POLY1305",
			"-groups", "X25519:P-256")
		res, err := Probe(probetest.Ctx(t), dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		// Groups are not compared exactly: in TLS 1.2 OpenSSL only signs with
		// an ECDSA key whose curve the client lists, and the group probe
		// offers one group at a time, so only the certificate's curve
		// (P-256) can be seen (see TestProbeOpenSSL/"tls1.2 rsa" for the
		// exact list).
		checkResult(t, res, wantVersions(TLS12), map[string][]string{
			"tls1.2": {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
				"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"},
		}, nil)
		if !slices.Contains(res.Groups, "secp256r1") {
			t.Errorf("groups %q lack the certificate's curve secp256r1", res.Groups)
		}
		for _, g := range res.Groups {
			if g != "secp256r1" && g != "x25519" {
				t.Errorf("group %s reported but not configured", g)
			}
		}
		// x25519 with a P-256 certificate: found by offering the certificate
		// curves after it and reading the ServerKeyExchange.
		if !slices.Contains(res.Groups, "x25519") {
			t.Errorf("configured group x25519 not found (groups %q)", res.Groups)
		}
	})

	t.Run("tls1.2 rsa", func(t *testing.T) {
		dial := probetest.OpenSSLServer(t, rsa, "-tls1_2",
			"-cipher", "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-CHACHA20-POLY1305:AES256-GCM-SHA384",
			"-groups", "X25519:P-256:P-384")
		res, err := Probe(probetest.Ctx(t), dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res, wantVersions(TLS12), map[string][]string{
			"tls1.2": {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
				"TLS_RSA_WITH_AES_256_GCM_SHA384"},
		}, []string{"x25519", "secp256r1", "secp384r1"})
		if v, ok := res.ServerOrder["tls1.2"]; !ok || v {
			t.Errorf("ServerOrder = %v, %v; OpenSSL follows the client's order by default", v, ok)
		}
	})

	t.Run("tls1.3", func(t *testing.T) {
		dial := probetest.OpenSSLServer(t, ecdsa, "-tls1_3",
			"-ciphersuites", "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256",
			"-groups", "P-384:X25519:ffdhe2048")
		res, err := Probe(probetest.Ctx(t), dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		checkResult(t, res, wantVersions(TLS13), map[string][]string{
			"tls1.3": {"TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"},
		}, []string{"secp384r1", "x25519", "ffdhe2048"})
	})

	t.Run("tls1.2 rsa dhe", func(t *testing.T) {
		// -serverpref: the server's order, which the probe must report as is.
		dial := probetest.OpenSSLServer(t, rsa, "-tls1_2", "-serverpref",
			"-cipher", "AES128-SHA:DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384:@SECLEVEL=0",
			"-groups", "P-521")
		res, err := Probe(probetest.Ctx(t), dial, opts)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"TLS_RSA_WITH_AES_128_CBC_SHA", "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"}
		checkResult(t, res, wantVersions(TLS12), map[string][]string{"tls1.2": want}, nil)
		if !slices.Equal(res.Suites["tls1.2"], want) {
			t.Errorf("suites in order %q, want the server's order %q", res.Suites["tls1.2"], want)
		}
		if !res.ServerOrder["tls1.2"] {
			t.Errorf("ServerOrder = false for -serverpref")
		}
		// In TLS 1.2 OpenSSL picks its DH group whatever the client lists,
		// so the TLS 1.2 group probe reports EC groups only: exactly P-521.
		if !slices.Equal(res.Groups, []string{"secp521r1"}) {
			t.Errorf("groups %q, want [secp521r1]", res.Groups)
		}
	})

	for _, v := range []struct {
		flag string
		ver  Version
	}{{"-tls1", TLS10}, {"-tls1_1", TLS11}} {
		t.Run(v.ver.Key(), func(t *testing.T) {
			dial := probetest.OpenSSLServer(t, rsa, v.flag, "-cipher", "ECDHE-RSA-AES128-SHA:AES256-SHA:DHE-RSA-AES256-SHA:@SECLEVEL=0")
			res, err := Probe(probetest.Ctx(t), dial, opts)
			if err != nil {
				t.Fatal(err)
			}
			checkResult(t, res, wantVersions(v.ver), map[string][]string{
				v.ver.Key(): {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "TLS_RSA_WITH_AES_256_CBC_SHA", "TLS_DHE_RSA_WITH_AES_256_CBC_SHA"},
			}, nil)
		})
	}
}

// A Go server imposes its own suite order, except that it lets the client
// choose between AES-GCM and ChaCha20: still server order, and the probe
// must say so (offering the suites reversed alone would say "client").
func TestServerOrderGoServer(t *testing.T) {
	dial := probetest.GoServer(t, &tls.Config{Certificates: []tls.Certificate{probetest.Leaf(t, certs.ECDSAP256).TLS}, MaxVersion: tls.VersionTLS12})
	opts := Options{Timeout: 5 * time.Second, Concurrency: 4, ServerName: "127.0.0.1"}
	suites, err := Suites(probetest.Ctx(t), dial, TLS12, opts)
	if err != nil {
		t.Fatal(err)
	}
	own, err := ServerPrefersOwnOrder(probetest.Ctx(t), dial, TLS12, suites, opts)
	if err != nil || !own {
		t.Errorf("ServerPrefersOwnOrder = %v, %v; want true for a Go server (suites %v)", own, err, suites)
	}
}
