package serve

import (
	"bufio"
	"io"

	"golang.org/x/crypto/cryptobyte"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/ldap"
	"github.com/starttls-go/starttls/internal/proto/mysql"
)

// The names apps_test.go knew when the LDAP, PostgreSQL and MySQL
// applications lived in this package; they now live in
// internal/proto/NAME/serve.go and are reached through the registry.

var (
	ldapApp     = appFor(starttls.LDAP)
	postgresApp = appFor(starttls.Postgres)
	mysqlApp    = appFor(starttls.MySQL)
)

const myPlugin = mysql.NativePassword

var nativePassword = mysql.ServeNativePassword

func appendPacket(out []byte, seq byte, payload []byte) []byte {
	return append(out, mysql.Packet(seq, payload)...)
}

func cstr(s string) []byte { return append([]byte(s), 0) }

func ldapMessage(id, op int, body func(b *cryptobyte.Builder)) []byte {
	return ldap.Encode(id, op, true, body)
}

func readBERMessage(r *bufio.Reader, limit int) ([]byte, error) {
	return ldap.ReadMessage(func(b []byte) error { _, err := io.ReadFull(r, b); return err }, limit)
}

const (
	ldapWhoAmIOID = "1.3.6.1.4.1.4203.1.11.3" // RFC 4532

	opBind        = ldap.BindRequest
	opUnbind      = ldap.UnbindRequest
	opSearch      = ldap.SearchRequest
	opSearchEntry = ldap.SearchResEntry
	opSearchDone  = ldap.SearchResDone
	opExtended    = ldap.ExtendedRequest

	ldapSuccess            = ldap.Success
	ldapNoSuchObject       = 32
	ldapInvalidCredentials = 49
	ldapUnwillingToPerform = 53
)
