package ldap

import (
	"testing"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/starttls-go/starttls/internal/proto/registry"
	"github.com/starttls-go/starttls/internal/proto/registry/registrytest"
)

// BindBody is a simple BindRequest (LDAPv3) of name with pass, for
// Encode; exported for the external tests too.
func BindBody(name, pass string) func(b *cryptobyte.Builder) {
	return func(b *cryptobyte.Builder) {
		b.AddASN1Int64(3)
		b.AddASN1OctetString([]byte(name))
		b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte(pass)) })
	}
}

// SearchBody is a base-object SearchRequest of base for entries with an
// objectClass, asking for attrs (none: all), for Encode; exported for the
// external tests too.
func SearchBody(base string, attrs ...string) func(b *cryptobyte.Builder) {
	return func(b *cryptobyte.Builder) {
		b.AddASN1OctetString([]byte(base))
		b.AddASN1Enum(0)
		b.AddASN1Enum(0)
		b.AddASN1Int64(0)
		b.AddASN1Int64(0)
		b.AddASN1Boolean(false)
		b.AddASN1(cbasn1.Tag(7).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes([]byte("objectClass")) })
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			for _, a := range attrs {
				b.AddASN1OctetString([]byte(a))
			}
		})
	}
}

func FuzzLDAPApp(f *testing.F) {
	bind := Encode(1, BindRequest, true, BindBody("cn=user,dc=test", "secret"))
	search := Encode(2, SearchRequest, true, SearchBody("", "namingContexts"))
	who := EncodeExtendedRequest(3, serveWhoAmIOID)
	f.Add(append(append(bind, search...), who...), true)
	f.Add(search, false)
	// A non-minimal four-octet length, as OpenLDAP and AD clients send.
	f.Add([]byte("\x30\x84\x00\x00\x00\x05\x02\x01\x05\x42\x00"), true)
	app := registry.ServeConnApp(serveApp)
	f.Fuzz(func(t *testing.T, in []byte, secure bool) { registrytest.RunOn(app, in, secure) })
}
