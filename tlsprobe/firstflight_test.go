package tlsprobe

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/internal/loopback"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/tlsprobe/internal/probetest"
)

func hsMsg(typ byte, body []byte) []byte {
	return append([]byte{typ, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
}

func u16(b []byte) []byte { return append([]byte{byte(len(b) >> 8), byte(len(b))}, b...) }
func u24(b []byte) []byte {
	return append([]byte{byte(len(b) >> 16), byte(len(b) >> 8), byte(len(b))}, b...)
}

func certMsg(ders ...[]byte) []byte {
	var list []byte
	for _, d := range ders {
		list = append(list, u24(d)...)
	}
	return hsMsg(hsCertificate, u24(list))
}

func dheSKE(p, g, y []byte) []byte {
	body := append(append(append([]byte{}, u16(p)...), u16(g)...), u16(y)...)
	body = append(body, 0x04, 0x01) // sha256, rsa
	return hsMsg(hsServerKeyExchange, append(body, u16(bytes.Repeat([]byte{9}, 64))...))
}

func ecdheSKE(curve uint16) []byte {
	body := []byte{3, byte(curve >> 8), byte(curve), 32}
	body = append(body, bytes.Repeat([]byte{5}, 32)...)
	return hsMsg(hsServerKeyExchange, append(append(body, 0x04, 0x03), u16(bytes.Repeat([]byte{9}, 64))...))
}

// testFlight packs handshake messages into records of at most size bytes each,
// as a server may split them.
func testFlight(size int, msgs ...[]byte) []byte {
	all := bytes.Join(msgs, nil)
	var out []byte
	for len(all) > 0 {
		n := min(size, len(all))
		out = append(out, record(22, all[:n])...)
		all = all[n:]
	}
	return out
}

// A 1024-bit prime not in any table (any odd 1024-bit value does for the parser).
var privateP = append([]byte{0xC5}, bytes.Repeat([]byte{0x3B}, 127)...)

func testFlights(t *testing.T) (der []byte, dhe, ecdhe, rsaKx []byte) {
	t.Helper()
	leaf := probetest.Leaf(t, certs.RSA2048)
	der = leaf.TLS.Certificate[0]
	rnd := bytes.Repeat([]byte{1}, 32)
	done := hsMsg(hsServerHelloDone, nil)
	dhe = testFlight(16384, serverHelloBody(0x0303, rnd, nil, 0x009E), certMsg(der), dheSKE(privateP, []byte{2}, bytes.Repeat([]byte{7}, 128)), done)
	ecdhe = testFlight(700, serverHelloBody(0x0303, rnd, nil, 0xC02F), certMsg(der, der), ecdheSKE(0x0017), hsMsg(hsCertificateStatus, []byte{1, 0, 0, 1, 0}), done)
	rsaKx = testFlight(16384, serverHelloBody(0x0301, rnd, nil, 0x002F), certMsg(der), hsMsg(hsCertificateReq, []byte{1, 1, 0, 0}), done)
	return
}

func TestReadFirstFlight(t *testing.T) {
	der, dhe, ecdhe, rsaKx := testFlights(t)
	ff, err := ReadFirstFlight(bytes.NewReader(dhe))
	if err != nil {
		t.Fatal(err)
	}
	if ff.Hello.Suite != 0x009E || len(ff.Certificates) != 1 || !bytes.Equal(ff.Certificates[0], der) {
		t.Errorf("dhe flight: suite %x, %d certificates", ff.Hello.Suite, len(ff.Certificates))
	}
	if _, err := x509.ParseCertificate(ff.Certificates[0]); err != nil {
		t.Error(err)
	}
	if kx := ff.KeyExchange; kx.Kind != "dhe" || kx.DHBits() != 1024 || !bytes.Equal(kx.P, privateP) || !bytes.Equal(kx.G, []byte{2}) {
		t.Errorf("dhe key exchange %+v (%d bits)", kx.Kind, kx.DHBits())
	}
	if _, ok := LookupDHGroup(ff.KeyExchange.P); ok {
		t.Error("a private prime was named")
	}

	ff, err = ReadFirstFlight(bytes.NewReader(ecdhe))
	if err != nil {
		t.Fatal(err)
	}
	if kx := ff.KeyExchange; kx.Kind != "ecdhe" || kx.Curve != 0x0017 || kx.DHBits() != 0 || len(ff.Certificates) != 2 || !ff.OCSPStapled {
		t.Errorf("ecdhe flight split over records: %+v, %d certificates, stapled %v", kx, len(ff.Certificates), ff.OCSPStapled)
	}

	ff, err = ReadFirstFlight(bytes.NewReader(rsaKx))
	if err != nil {
		t.Fatal(err)
	}
	if ff.KeyExchange.Kind != "" || ff.Hello.Version != TLS10 || len(ff.Certificates) != 1 || ff.OCSPStapled {
		t.Errorf("rsa flight: %+v, version %s", ff.KeyExchange, ff.Hello.Version)
	}
}

// Every malformed flight is a typed error, never a panic or a success.
func TestReadFirstFlightBad(t *testing.T) {
	der, dhe, _, _ := testFlights(t)
	rnd := bytes.Repeat([]byte{1}, 32)
	sh := serverHelloBody(0x0303, rnd, nil, 0x009E)
	done := hsMsg(hsServerHelloDone, nil)
	// A Certificate message that claims 260000 bytes, and more than that.
	huge := append(record(22, append([]byte{11, 0x03, 0xf7, 0xa0}, make([]byte, 16000)...)), bytes.Repeat(record(22, make([]byte, 16000)), 20)...)
	// One that claims 100000 bytes, sent a byte a record.
	dribble := append(record(22, []byte{11, 0x01, 0x86, 0xa0}), bytes.Repeat(record(22, []byte{0}), 70)...)
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"alert", record(21, []byte{2, 40}), ErrDeclined},
		{"not tls", []byte("220 mail.example ESMTP\r\n"), ErrNotTLS},
		{"certificate first", testFlight(16384, certMsg(der), done), ErrBadFlight},
		{"tls 1.3 chosen", testFlight(16384, serverHelloBody(0x0303, rnd, nil, 0x1301, ext(43, 3, 4)), done), ErrBadFlight},
		{"bad certificate list", testFlight(16384, sh, hsMsg(hsCertificate, []byte{0, 0, 9, 0, 0, 1}), done), ErrBadFlight},
		{"empty dh prime", testFlight(16384, sh, dheSKE(nil, []byte{2}, []byte{3}), done), ErrBadFlight},
		{"explicit curve", testFlight(16384, serverHelloBody(0x0303, rnd, nil, 0xC02F), hsMsg(hsServerKeyExchange, []byte{1, 0, 0}), done), ErrBadFlight},
		{"key exchange for rsa", testFlight(16384, serverHelloBody(0x0303, rnd, nil, 0x002F), dheSKE(privateP, []byte{2}, []byte{3}), done), ErrBadFlight},
		{"unexpected message", testFlight(16384, sh, hsMsg(20, make([]byte, 12))), ErrBadFlight},
		{"two server hellos", testFlight(16384, sh, sh, done), ErrBadFlight},
		{"closed inside", dhe[:len(dhe)-4], ErrNotTLS},
		{"closed after hello", testFlight(16384, sh), ErrBadFlight},
		{"huge message", testFlight(16384, sh, []byte{11, 0x7f, 0, 0}), ErrFlightTooLarge},
		{"too many bytes", append(testFlight(16384, sh), huge...), ErrFlightTooLarge},
		{"too many records", append(testFlight(16384, sh), dribble...), ErrFlightTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ff, err := ReadFirstFlight(bytes.NewReader(tc.in))
			if !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if ff == nil {
				t.Error("nil flight: callers read what came before the error")
			}
		})
	}
}

// flightServer answers each ClientHello with reply (nil: stays silent).
func flightServer(t *testing.T, reply []byte) Dialer {
	t.Helper()
	return probetest.TCPDialer(loopback.Serve(t, 5*time.Second, func(c net.Conn) {
		if _, _, err := readRecord(c); err != nil {
			return
		}
		if reply == nil {
			_, _ = c.Read(make([]byte, 1))
			return
		}
		_, _ = c.Write(reply)
	}))
}

func TestFirstFlightHello(t *testing.T) {
	_, dhe, _, _ := testFlights(t)
	o := Options{Timeout: 500 * time.Millisecond}
	ff, err := FirstFlightHello(context.Background(), flightServer(t, dhe), o, TLS12, nil)
	if err != nil || ff.KeyExchange.DHBits() != 1024 {
		t.Fatalf("%v %+v", err, ff)
	}
	start := time.Now()
	_, err = FirstFlightHello(context.Background(), flightServer(t, nil), o, TLS12, nil)
	if err == nil || errors.Is(err, ErrDeclined) || time.Since(start) > 3*time.Second {
		t.Errorf("silent server: %v after %v", err, time.Since(start))
	}
}

// A real DHE-only server (openssl s_server): the chain and the group come
// from the first flight, and RFC 7919 ffdhe2048 is named.
func TestFirstFlightOpenSSL(t *testing.T) {
	bin := peer.Require(t, "openssl")["openssl"]
	leaf := probetest.Leaf(t, certs.RSA2048)
	o := Options{Timeout: 5 * time.Second}
	dir := t.TempDir()
	dh1024 := filepath.Join(dir, "dh1024.pem")
	if out, err := exec.Command(bin, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "dh_paramgen_prime_len:1024", "-out", dh1024).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v %s", err, out)
	}
	ffdhe := filepath.Join(dir, "ffdhe2048.pem")
	if out, err := exec.Command(bin, "genpkey", "-genparam", "-algorithm", "DH", "-pkeyopt", "group:ffdhe2048", "-out", ffdhe).CombinedOutput(); err != nil {
		t.Fatalf("openssl genpkey: %v %s", err, out)
	}
	for _, tc := range []struct {
		file, name string
		bits       int
	}{{dh1024, "", 1024}, {ffdhe, "RFC 7919 ffdhe2048", 2048}} {
		dial := probetest.OpenSSLServer(t, leaf, "-tls1_2", "-cipher", "DHE-RSA-AES128-GCM-SHA256:@SECLEVEL=0", "-dhparam", tc.file)
		ff, err := FirstFlightHello(probetest.Ctx(t), dial, o, TLS12, nil)
		if err != nil {
			t.Fatal(err)
		}
		if SuiteName(ff.Hello.Suite) != "TLS_DHE_RSA_WITH_AES_128_GCM_SHA256" || len(ff.Certificates) == 0 || !bytes.Equal(ff.Certificates[0], leaf.TLS.Certificate[0]) {
			t.Errorf("suite %s, %d certificates", SuiteName(ff.Hello.Suite), len(ff.Certificates))
		}
		g, named := LookupDHGroup(ff.KeyExchange.P)
		if ff.KeyExchange.DHBits() != tc.bits || named != (tc.name != "") || g.Name != tc.name {
			t.Errorf("%s: %d bits, group %q", filepath.Base(tc.file), ff.KeyExchange.DHBits(), g.Name)
		}
	}
	// An ECDHE-only server: the curve, and no DH group.
	dial := probetest.OpenSSLServer(t, leaf, "-tls1_2", "-cipher", "ECDHE-RSA-AES128-GCM-SHA256", "-groups", "P-256")
	ff, err := FirstFlightHello(probetest.Ctx(t), dial, o, TLS12, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ff.KeyExchange.Kind != "ecdhe" || ff.KeyExchange.Curve != 0x0017 || ff.KeyExchange.DHBits() != 0 {
		t.Errorf("ecdhe server: %+v", ff.KeyExchange)
	}
	_ = os.Remove(dh1024)
}

func FuzzReadFirstFlight(f *testing.F) {
	leaf, err := certs.NewCA("fuzz")
	if err != nil {
		f.Fatal(err)
	}
	rnd := bytes.Repeat([]byte{1}, 32)
	der := leaf.Cert.Raw
	f.Add(testFlight(16384, serverHelloBody(0x0303, rnd, nil, 0x009E), certMsg(der), dheSKE(privateP, []byte{2}, []byte{7}), hsMsg(hsServerHelloDone, nil)))
	f.Add(testFlight(300, serverHelloBody(0x0303, rnd, nil, 0xC02F), certMsg(der), ecdheSKE(29), hsMsg(hsServerHelloDone, nil)))
	f.Add(record(21, []byte{2, 40}))
	f.Fuzz(func(t *testing.T, in []byte) {
		ff, err := ReadFirstFlight(bytes.NewReader(in))
		if ff == nil {
			t.Fatal("nil flight")
		}
		if err == nil && ff.Hello == nil {
			t.Fatal("success without a ServerHello")
		}
		if err != nil && !errors.Is(err, ErrNotTLS) && !errors.Is(err, ErrDeclined) {
			t.Fatalf("untyped error %v", err)
		}
	})
}
