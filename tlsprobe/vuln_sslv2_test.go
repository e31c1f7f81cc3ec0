package tlsprobe

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"testing"
	"time"
)

// sslv2Record frames body with the two-byte header, or the three-byte one
// (no padding) when long is false.
func sslv2Record(body []byte, twoByte bool) []byte {
	if twoByte {
		return append([]byte{0x80 | byte(len(body)>>8), byte(len(body))}, body...)
	}
	return append([]byte{byte(len(body) >> 8), byte(len(body)), 0}, body...)
}

func sslv2Hello(cert int, ciphers []uint32, connID int) []byte {
	b := []byte{4, 0, 1, 0, 2, byte(cert >> 8), byte(cert), 0, byte(3 * len(ciphers)), 0, byte(connID)}
	b = append(b, make([]byte, cert)...)
	for _, c := range ciphers {
		b = append(b, byte(c>>16), byte(c>>8), byte(c))
	}
	return append(b, make([]byte, connID)...)
}

func TestSSLv2ClientHelloLayout(t *testing.T) {
	h := SSLv2ClientHello()
	n := int(h[0]&0x7F)<<8 | int(h[1])
	if h[0]&0x80 == 0 || n != len(h)-2 {
		t.Fatalf("header %x for %d bytes", h[:2], len(h)-2)
	}
	b := h[2:]
	if b[0] != 1 || b[1] != 0 || b[2] != 2 {
		t.Fatalf("not a version-2 CLIENT-HELLO: %x", b[:3])
	}
	specs, sid, challenge := int(b[3])<<8|int(b[4]), int(b[5])<<8|int(b[6]), int(b[7])<<8|int(b[8])
	if specs != 3*len(SSLv2Ciphers) || sid != 0 || challenge != 16 || 9+specs+sid+challenge != len(b) {
		t.Fatalf("lengths %d %d %d in %d bytes", specs, sid, challenge, len(b))
	}
	if b[9] != 0x01 || b[10] != 0x00 || b[11] != 0x80 {
		t.Errorf("first cipher kind %x", b[9:12])
	}
}

func TestReadSSLv2ServerHello(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      []byte
		ciphers []uint32
		cert    int
		err     error
	}{
		{"two-byte header", sslv2Record(sslv2Hello(5, []uint32{0x0700C0}, 16), true), []uint32{0x0700C0}, 5, nil},
		{"three-byte header", sslv2Record(sslv2Hello(0, []uint32{0x010080, 0x060040}, 32), false), []uint32{0x010080, 0x060040}, 0, nil},
		{"ERROR", sslv2Record([]byte{0, 0, 1}, true), nil, 0, ErrSSLv2Error},
		{"TLS alert", []byte{21, 3, 1, 0, 2, 2, 40}, nil, 0, ErrDeclined},
		{"hang-up", nil, nil, 0, ErrDeclined},
		{"SMTP banner", []byte("220 mail.example ESMTP\r\n"), nil, 0, ErrNotTLS},
		{"short connection id", sslv2Record(sslv2Hello(0, nil, 8), true), nil, 0, ErrNotTLS},
		{"cipher list not whole", sslv2Record(append(sslv2Hello(0, nil, 16)[:8], append([]byte{2, 0, 16}, make([]byte, 18)...)...), true), nil, 0, ErrNotTLS},
		{"wrong version", sslv2Record([]byte{4, 0, 1, 3, 1, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, true), nil, 0, ErrNotTLS},
		{"cut short", sslv2Record(sslv2Hello(5, []uint32{0x0700C0}, 16), true)[:20], nil, 0, ErrNotTLS},
		{"CLIENT-HELLO echoed", SSLv2ClientHello(), nil, 0, ErrNotTLS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sh, err := ReadSSLv2ServerHello(bytes.NewReader(tc.in))
			if tc.err != nil {
				if !errors.Is(err, tc.err) || sh != nil {
					t.Fatalf("got %+v, %v; want %v", sh, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(sh.Ciphers, tc.ciphers) || sh.CertificateSize != tc.cert || sh.Version != 2 {
				t.Fatalf("got %+v", sh)
			}
		})
	}
}

// TestHelloSSLv2Stalled: a server that reads the hello and says nothing
// gives a timeout within the context's deadline, not a hang or a verdict.
func TestHelloSSLv2Stalled(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	go func() { _, _ = io.Copy(io.Discard, server) }()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	sh, err := HelloSSLv2(ctx, client)
	if err == nil || errors.Is(err, ErrDeclined) || sh != nil {
		t.Fatalf("got %+v, %v; want a timeout", sh, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v", el)
	}
}

func FuzzReadSSLv2ServerHello(f *testing.F) {
	f.Add(sslv2Record(sslv2Hello(5, []uint32{0x0700C0}, 16), true))
	f.Add(sslv2Record(sslv2Hello(0, nil, 32), false))
	f.Add(sslv2Record([]byte{0, 0, 1}, true))
	f.Add([]byte{21, 3, 1, 0, 2, 2, 40})
	f.Add([]byte{0x80, 0})
	f.Add([]byte{0xFF, 0xFF, 4})
	f.Fuzz(func(t *testing.T, data []byte) {
		sh, err := ReadSSLv2ServerHello(bytes.NewReader(data))
		if err != nil {
			if sh != nil {
				t.Fatalf("hello %+v with error %v", sh, err)
			}
			if !errors.Is(err, ErrDeclined) && !errors.Is(err, ErrNotTLS) && !errors.Is(err, ErrSSLv2Error) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if sh.Version != 2 || len(sh.Ciphers)*3+sh.CertificateSize+11+16 > len(data) {
			t.Fatalf("accepted %+v from %d bytes", sh, len(data))
		}
	})
}

func FuzzParseECPointFormats(f *testing.F) {
	f.Add([]byte{1, 0})
	f.Add([]byte{3, 0, 1, 2})
	f.Add([]byte{})
	f.Add([]byte{5, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fs, err := ParseECPointFormats(data)
		if err != nil {
			if !errors.Is(err, ErrNotTLS) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(fs) == 0 || len(fs) != len(data)-1 || int(data[0]) != len(fs) {
			t.Fatalf("formats %v from %x", fs, data)
		}
		for _, p := range fs {
			if ECPointFormatName(p) == "" {
				t.Fatalf("no name for %d", p)
			}
		}
	})
}
