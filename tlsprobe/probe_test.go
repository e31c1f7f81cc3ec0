package tlsprobe

import (
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/tlsprobe/internal/probetest"
)

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
