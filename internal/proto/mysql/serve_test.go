package mysql

import (
	"encoding/binary"
	"slices"
	"testing"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/registry/registrytest"
)

func FuzzMySQLApp(f *testing.F) {
	caps := ClientProtocol41 | ClientSecureConnection | ClientPluginAuth
	p := binary.LittleEndian.AppendUint32(nil, caps)
	p = append(binary.LittleEndian.AppendUint32(p, 1<<24), 45)
	p = append(p, make([]byte, 23)...)
	p = append(p, "user\x00\x00mysql_native_password\x00"...)
	login := Packet(2, p)
	// slices.Concat: two appends to login could share its array.
	f.Add(slices.Concat(login, Packet(0, []byte("\x03select 1"))), true)
	f.Add(slices.Concat(login, Packet(0, []byte("\x0e"))), false)
	app := registry.ServeConnApp(serveApp)
	f.Fuzz(func(t *testing.T, in []byte, secure bool) { registrytest.RunOn(app, in, secure) })
}
