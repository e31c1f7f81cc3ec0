package mysql

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// HandshakeResponse builds, byte for byte, the packets the probes sent
// before it was shared: with and without CLIENT_PLUGIN_AUTH.
func TestHandshakeResponse(t *testing.T) {
	for _, caps := range []uint32{
		ClientProtocol41 | ClientSecureConnection | ClientPluginAuth | ClientSSL,
		ClientProtocol41 | ClientSecureConnection,
	} {
		want := binary.LittleEndian.AppendUint32(nil, caps)
		want = binary.LittleEndian.AppendUint32(want, 1<<24)
		want = append(want, 45)
		want = append(want, make([]byte, 23)...)
		want = append(want, "u@invalid\x00"...)
		want = append(want, 0)
		if caps&ClientPluginAuth != 0 {
			want = append(want, "mysql_native_password\x00"...)
		}
		if got := HandshakeResponse(caps, "u@invalid"); !bytes.Equal(got, want) {
			t.Errorf("caps %#x:\n got % x\nwant % x", caps, got, want)
		}
		r, err := ParseResponse(HandshakeResponse(caps, "u@invalid"))
		if err != nil || r.User != "u@invalid" || r.Capabilities != caps {
			t.Errorf("caps %#x: parsed back as %+v, %v", caps, r, err)
		}
	}
}

func TestLoginPlaintextAnswer(t *testing.T) {
	greeting := HandshakePacket("8.0.0", 1, make([]byte, 20))
	for _, tc := range []struct {
		after    []byte
		executed bool
		what     string
	}{
		{nil, false, ""},
		{[]byte{0x15, 3, 3, 0, 2, 2, 40}, false, "a TLS record"},
		{ErrPacket(2, 3159, "HY000", "insecure transport", true), false, "in plaintext: "},
		{Packet(2, []byte{0, 0, 0, 2, 0, 0, 0}), true, "in plaintext: OK packet"},
	} {
		what, executed := LoginPlaintextAnswer(append(append([]byte{}, greeting...), tc.after...))
		if executed != tc.executed || len(what) < len(tc.what) || what[:len(tc.what)] != tc.what {
			t.Errorf("after % x: %q %v", tc.after, what, executed)
		}
	}
	if LoginJudge(ErrPacket(2, 3159, "HY000", "x", true)[4:]) != registry.LoginRefused {
		t.Error("3159 is not a refusal")
	}
}
