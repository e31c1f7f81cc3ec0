package starttls

import (
	"sync"

	_ "github.com/starttls-go/starttls/internal/proto/all"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// This file names the protocols. Each protocol's dialogue (client half
// and server half), its port and its implicit-TLS variant live in its
// folder internal/proto/NAME, which registers them with
// internal/proto/registry (protocol.go); the package builds its table
// from there. The constants are a convenience: Dial, Server and Lookup
// take any registered name without one.

// The protocols. The implicit-TLS variants (SMTPS, IMAPS, ..., XMPPS,
// PostgresDirect) speak TLS from the first byte; Lookup tells which.
const (
	SMTP           Protocol = "smtp"
	Submission     Protocol = "submission"
	SMTPS          Protocol = "smtps"
	LMTP           Protocol = "lmtp"
	IMAP           Protocol = "imap"
	IMAPS          Protocol = "imaps"
	POP3           Protocol = "pop3"
	POP3S          Protocol = "pop3s"
	XMPP           Protocol = "xmpp"         // client to server
	XMPPServer     Protocol = "xmpp-server"  // server to server
	XMPPS          Protocol = "xmpps"        // XEP-0368
	XMPPSServer    Protocol = "xmpps-server" // XEP-0368
	LDAP           Protocol = "ldap"
	LDAPS          Protocol = "ldaps"
	FTP            Protocol = "ftp"
	FTPS           Protocol = "ftps"
	NNTP           Protocol = "nntp"
	NNTPS          Protocol = "nntps"
	Sieve          Protocol = "sieve" // ManageSieve
	Postgres       Protocol = "postgres"
	PostgresDirect Protocol = "postgres-direct" // PostgreSQL 17 direct SSL, ALPN "postgresql"
	MySQL          Protocol = "mysql"
	IRC            Protocol = "irc"
	IRCS           Protocol = "ircs"
	HTTP           Protocol = "http" // RFC 2817 Upgrade: TLS/1.0
	HTTPS          Protocol = "https"
)

// table builds the protocol table from the protocols the folders
// registered (internal/proto/all imports them all), once, on first use:
// every init function has run by then.
var table = sync.OnceValue(func() map[Protocol]*spec {
	// registry.Register has refused a name given twice.
	t := map[Protocol]*spec{}
	for _, n := range registry.Names() {
		p := registry.Lookup(n)
		name := Protocol(p.Name)
		t[name] = &spec{name: name, port: p.Port, base: name, client: p.Client, server: p.Server}
		if tw := p.Implicit; tw != nil {
			t[Protocol(tw.Name)] = &spec{name: Protocol(tw.Name), port: tw.Port, implicit: true, base: name,
				client: p.Client, server: p.Server, alpn: tw.ALPN}
		}
	}
	return t
})
