package tlsprobe

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"reflect"
	"testing"
)

// serverHelloRecord builds a ServerHello handshake body (without the record
// header) with the given extensions (type, data pairs).
func serverHelloBody(version uint16, random []byte, sid []byte, suite uint16, exts ...[]byte) []byte {
	var msg []byte
	msg = append(msg, byte(version>>8), byte(version))
	msg = append(msg, random...)
	msg = append(msg, byte(len(sid)))
	msg = append(msg, sid...)
	msg = append(msg, byte(suite>>8), byte(suite), 0)
	if exts != nil {
		var e []byte
		for _, x := range exts {
			e = append(e, x...)
		}
		msg = append(msg, byte(len(e)>>8), byte(len(e)))
		msg = append(msg, e...)
	}
	return append([]byte{2, byte(len(msg) >> 16), byte(len(msg) >> 8), byte(len(msg))}, msg...)
}

func ext(typ uint16, data ...byte) []byte {
	return append([]byte{byte(typ >> 8), byte(typ), byte(len(data) >> 8), byte(len(data))}, data...)
}

func record(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
}

func seedBodies() [][]byte {
	rnd := bytes.Repeat([]byte{0x42}, 32)
	hrr := sha256.Sum256([]byte("HelloRetryRequest"))
	sid := bytes.Repeat([]byte{7}, 32)
	return [][]byte{
		serverHelloBody(0x0303, rnd, nil, 0xC02F),
		serverHelloBody(0x0303, rnd, sid, 0xC02B, ext(0xff01, 0), ext(23), ext(11, 1, 0)),
		serverHelloBody(0x0303, rnd, sid, 0x1301, ext(43, 3, 4), ext(51, append([]byte{0, 0x1d, 0, 32}, rnd...)...)),
		serverHelloBody(0x0303, hrr[:], sid, 0x1302, ext(43, 3, 4), ext(51, 0, 0x17)),
		serverHelloBody(0x0301, rnd, nil, 0x002F, ext(0xff01, 0)),
		serverHelloBody(0x0300, rnd, nil, 0x000A),
		serverHelloBody(0x0303, rnd, nil, 0x1301, ext(43, 3)),    // truncated supported_versions
		serverHelloBody(0x0303, rnd, nil, 0x1301, ext(51, 0)),    // truncated key_share
		serverHelloBody(0x0303, rnd, nil, 0x1301, []byte{0, 43}), // truncated extension
		serverHelloBody(0x0303, rnd[:10], nil, 0x1301),           // truncated random
		{11, 0, 0, 3, 0, 0, 0}, // certificate, not ServerHello
		{2, 0, 0},              // truncated header
		{2, 0xff, 0xff, 0xff},  // length beyond the body
	}
}

// FuzzParseRecord checks that ParseRecord never panics, that failures are
// typed (ErrNotTLS, or ErrDeclined with the Alert), and that a parsed
// ServerHello agrees with the bytes it came from.
func FuzzParseRecord(f *testing.F) {
	for _, b := range seedBodies() {
		f.Add(byte(22), b)
	}
	f.Add(byte(21), []byte{2, 40})
	f.Add(byte(21), []byte{2})
	f.Add(byte(23), []byte{1, 2, 3})
	f.Add(byte(22), []byte{})
	f.Fuzz(func(t *testing.T, typ byte, body []byte) {
		sh, err := ParseRecord(typ, body)
		if err != nil {
			if sh != nil {
				t.Fatalf("ServerHello %+v with error %v", sh, err)
			}
			var a Alert
			switch {
			case errors.Is(err, ErrDeclined):
				if typ != 21 || !errors.As(err, &a) || a.Level != body[0] || a.Description != body[1] {
					t.Fatalf("ErrDeclined for record type %d body %x: %v", typ, body, err)
				}
			case errors.Is(err, ErrNotTLS):
				if typ == 21 && len(body) >= 2 {
					t.Fatalf("a %d-byte alert rejected as not TLS: %v", len(body), err)
				}
			default:
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if sh == nil {
			t.Fatal("nil ServerHello and nil error")
		}
		checkServerHello(t, typ, body, sh)
	})
}

// checkServerHello re-reads the fixed fields of a successfully parsed body.
func checkServerHello(t *testing.T, typ byte, body []byte, sh *ServerHello) {
	t.Helper()
	if typ != 22 || len(body) < 4 || body[0] != 2 {
		t.Fatalf("accepted record type %d body %x", typ, body)
	}
	n := int(body[1])<<16 | int(body[2])<<8 | int(body[3])
	if n > len(body)-4 || n < 38 {
		t.Fatalf("accepted a ServerHello of declared length %d in %d bytes", n, len(body))
	}
	msg := body[4 : 4+n]
	random := msg[2:34]
	sidLen := int(msg[34])
	if 35+sidLen+3 > len(msg) {
		t.Fatalf("accepted a ServerHello whose session id overruns it: %x", msg)
	}
	suite := uint16(msg[35+sidLen])<<8 | uint16(msg[36+sidLen])
	if sh.Suite != suite {
		t.Fatalf("Suite = %#04x, bytes say %#04x", sh.Suite, suite)
	}
	hrr := sha256.Sum256([]byte("HelloRetryRequest"))
	if sh.HelloRetry != bytes.Equal(random, hrr[:]) {
		t.Fatalf("HelloRetry = %v for random %x", sh.HelloRetry, random)
	}
	rest := msg[38+sidLen:]
	legacy := Version(uint16(msg[0])<<8 | uint16(msg[1]))
	if len(rest) == 0 {
		if sh.Version != legacy || sh.Group != 0 {
			t.Fatalf("no extensions, but Version %v (legacy %v) Group %#x", sh.Version, legacy, sh.Group)
		}
		return
	}
	// Walk the extensions: the last supported_versions and key_share win.
	if len(rest) < 2 || int(rest[0])<<8|int(rest[1]) > len(rest)-2 {
		t.Fatalf("accepted bad extensions block %x", rest)
	}
	exts := rest[2 : 2+(int(rest[0])<<8|int(rest[1]))]
	wantV, wantG := legacy, uint16(0)
	for len(exts) > 0 {
		if len(exts) < 4 {
			t.Fatalf("accepted truncated extension %x", exts)
		}
		et := uint16(exts[0])<<8 | uint16(exts[1])
		l := int(exts[2])<<8 | int(exts[3])
		if l > len(exts)-4 {
			t.Fatalf("accepted overlong extension %x", exts)
		}
		data := exts[4 : 4+l]
		switch et {
		case 43:
			wantV = Version(uint16(data[0])<<8 | uint16(data[1]))
		case 51:
			wantG = uint16(data[0])<<8 | uint16(data[1])
		}
		exts = exts[4+l:]
	}
	if sh.Version != wantV || sh.Group != wantG {
		t.Fatalf("Version %v Group %#x, extensions say %v %#x", sh.Version, sh.Group, wantV, wantG)
	}
}

// FuzzReadServerHello checks that ReadServerHello never panics, that its
// errors are typed, and that a success is what ParseRecord makes of the
// first record.
func FuzzReadServerHello(f *testing.F) {
	for _, b := range seedBodies() {
		f.Add(record(22, b))
	}
	f.Add(record(21, []byte{2, 70}))
	f.Add([]byte{0x80, 0x2e, 0x01, 0x03, 0x01})
	f.Add([]byte("220 mx.example.org ESMTP\r\n"))
	f.Add([]byte{22, 3, 3, 0, 0})
	f.Add([]byte{22, 3, 3, 0xff, 0xff})
	f.Add([]byte{22, 3, 1})
	f.Add([]byte{22, 3, 3, 0, 10}) // header, then a hang-up
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		sh, err := ReadServerHello(bytes.NewReader(data))
		if err != nil {
			if sh != nil {
				t.Fatalf("ServerHello %+v with error %v", sh, err)
			}
			if !errors.Is(err, ErrDeclined) && !errors.Is(err, ErrNotTLS) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("untyped error %v", err)
			}
			if len(data) < 5 && !errors.Is(err, ErrDeclined) {
				t.Fatalf("a %d-byte answer (hang-up) is not ErrDeclined: %v", len(data), err)
			}
			return
		}
		if len(data) < 5 || data[0] != 22 || data[1] != 3 {
			t.Fatalf("accepted record header %x", data[:min(5, len(data))])
		}
		n := int(data[3])<<8 | int(data[4])
		if n == 0 || n > maxRecord || 5+n > len(data) {
			t.Fatalf("accepted record length %d with %d bytes", n, len(data)-5)
		}
		again, err := ParseRecord(data[0], data[5:5+n])
		if err != nil || !reflect.DeepEqual(again, sh) {
			t.Fatalf("ParseRecord of the same record: %+v, %v; ReadServerHello gave %+v", again, err, sh)
		}
		checkServerHello(t, data[0], data[5:5+n], sh)
	})
}
