package postgres

import (
	"encoding/binary"
	"testing"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/registry/registrytest"
)

func FuzzPostgresApp(f *testing.F) {
	params := "user\x00user\x00database\x00db\x00\x00"
	start := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	start = append(binary.BigEndian.AppendUint32(start, 3<<16), params...)
	pass := append([]byte{'p', 0, 0, 0, 11}, "secret\x00"...)
	q := append([]byte{'Q', 0, 0, 0, 13}, "SELECT 1\x00"...)
	f.Add(append(append(append([]byte(nil), start...), pass...), q...), true)
	f.Add(append(append([]byte(nil), start...), 'P', 0, 0, 0, 4, 'S', 0, 0, 0, 4), false)
	app := registry.ServeConnApp(serveApp)
	f.Fuzz(func(t *testing.T, in []byte, secure bool) { registrytest.RunOn(app, in, secure) })
}
