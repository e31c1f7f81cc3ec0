package tlsprobe

import (
	"bytes"
	"testing"

	"golang.org/x/crypto/cryptobyte"
)

// TestHelloCompressionAndExtensions reads back the optional ClientHello
// fields from the marshalled bytes, and the ServerHello's compression and
// extensions from a crafted answer.
func TestHelloCompressionAndExtensions(t *testing.T) {
	for _, v := range []Version{SSL30, TLS10, TLS12, TLS13} {
		ch := ClientHello{Version: v, Suites: []uint16{0x002F, 0x5600}, Compression: []uint8{1},
			Extensions: []Extension{{Type: 0x7777, Data: []byte{9, 8}}}}
		rec := ch.Marshal()
		s := cryptobyte.String(rec[5+4:])
		var ver uint16
		var random, sid, suites, comp cryptobyte.String
		if !s.ReadUint16(&ver) || !s.ReadBytes((*[]byte)(&random), 32) || !s.ReadUint8LengthPrefixed(&sid) ||
			!s.ReadUint16LengthPrefixed(&suites) || !s.ReadUint8LengthPrefixed(&comp) {
			t.Fatalf("%v: unparseable hello %x", v, rec)
		}
		if !bytes.Equal(comp, []byte{1, 0}) {
			t.Errorf("%v: compression methods %x, want 01 00", v, []byte(comp))
		}
		if !bytes.HasPrefix(suites, []byte{0x00, 0x2F, 0x56, 0x00}) {
			t.Errorf("%v: suites %x do not start with the offered ones", v, []byte(suites))
		}
		var exts cryptobyte.String
		if v == SSL30 {
			if !s.Empty() {
				t.Errorf("SSLv3 hello carries extensions: %x", []byte(s))
			}
			continue
		}
		if !s.ReadUint16LengthPrefixed(&exts) {
			t.Fatalf("%v: no extensions block", v)
		}
		var last uint16
		var lastData cryptobyte.String
		for !exts.Empty() {
			if !exts.ReadUint16(&last) || !exts.ReadUint16LengthPrefixed(&lastData) {
				t.Fatalf("%v: bad extension list", v)
			}
		}
		if last != 0x7777 || !bytes.Equal(lastData, []byte{9, 8}) {
			t.Errorf("%v: last extension %#x %x, want the extra one", v, last, []byte(lastData))
		}
	}

	sh, err := ParseRecord(22, craftedServerHello(TLS12, 0x002F, 1, []Extension{{0xFF01, []byte{0}}, {11, []byte{1, 0}}}))
	if err != nil {
		t.Fatal(err)
	}
	if sh.Compression != 1 {
		t.Errorf("Compression = %d, want 1", sh.Compression)
	}
	if d, ok := sh.Extension(0xFF01); !ok || !bytes.Equal(d, []byte{0}) {
		t.Errorf("renegotiation_info = %x, %v", d, ok)
	}
	if _, ok := sh.Extension(35); ok {
		t.Error("an extension that was not sent is reported")
	}
}

// craftedServerHello is a handshake message (no record header) for tests.
func craftedServerHello(v Version, suite uint16, comp uint8, exts []Extension) []byte {
	var b cryptobyte.Builder
	b.AddUint8(2)
	b.AddUint24LengthPrefixed(func(b *cryptobyte.Builder) {
		b.AddUint16(uint16(v))
		b.AddBytes(make([]byte, 32))
		b.AddUint8(0)
		b.AddUint16(suite)
		b.AddUint8(comp)
		if exts == nil {
			return
		}
		b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
			for _, e := range exts {
				b.AddUint16(e.Type)
				b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(e.Data) })
			}
		})
	})
	return b.BytesOrPanic()
}

// FuzzServerHelloExtensions: whatever ParseRecord accepts, the chosen
// compression is the byte after the suite and the extensions it lists
// fill the extension block exactly.
func FuzzServerHelloExtensions(f *testing.F) {
	f.Add(craftedServerHello(TLS12, 0x002F, 1, []Extension{{0xFF01, []byte{0}}, {11, []byte{1, 0}}}))
	f.Add(craftedServerHello(TLS12, 0xC02F, 0, nil))
	f.Add(craftedServerHello(TLS12, 0x1301, 0, []Extension{{43, []byte{3, 4}}, {51, []byte{0, 0x1D, 0, 1, 9}}}))
	f.Fuzz(func(t *testing.T, body []byte) {
		sh, err := ParseRecord(22, body)
		if err != nil {
			return
		}
		n := int(body[1])<<16 | int(body[2])<<8 | int(body[3])
		msg := body[4 : 4+n]
		sidLen := int(msg[34])
		if sh.Compression != msg[37+sidLen] {
			t.Fatalf("Compression %d, byte %d", sh.Compression, msg[37+sidLen])
		}
		rest := msg[38+sidLen:]
		if len(rest) == 0 {
			if len(sh.Extensions) != 0 {
				t.Fatalf("extensions %v from none", sh.Extensions)
			}
			return
		}
		sum := 0
		for _, e := range sh.Extensions {
			sum += 4 + len(e.Data)
			if d, ok := sh.Extension(e.Type); !ok || len(d) > len(rest) {
				t.Fatalf("Extension(%d) = %x, %v", e.Type, d, ok)
			}
		}
		if want := int(rest[0])<<8 | int(rest[1]); sum != want {
			t.Fatalf("extensions fill %d bytes of a %d-byte block", sum, want)
		}
	})
}
