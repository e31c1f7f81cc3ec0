package starttls

import (
	"github.com/starttls-go/starttls/internal/proto/postgres"
	"github.com/starttls-go/starttls/internal/proto/xmpp"
)

// This file lists the protocols: their names, ports and implicit-TLS
// variants. Each protocol's dialogue (client half and server half) lives
// in its own file (smtp.go, imap.go, ...), and its wire codec in
// internal/proto/NAME.

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

func init() {
	register(&spec{name: SMTP, port: 25, client: smtpClient("EHLO"), server: smtpServer("EHLO", "ESMTP")})
	register(&spec{name: Submission, port: 587, client: smtpClient("EHLO"), server: smtpServer("EHLO", "ESMTP")})
	register(&spec{name: LMTP, port: 24, client: smtpClient("LHLO"), server: smtpServer("LHLO", "LMTP")})
	registerImplicit(SMTPS, Submission, 465)
	register(&spec{name: IMAP, port: 143, client: imapClient(), server: imapServer()})
	registerImplicit(IMAPS, IMAP, 993)
	register(&spec{name: POP3, port: 110, client: pop3Client(), server: pop3Server()})
	registerImplicit(POP3S, POP3, 995)
	register(&spec{name: XMPP, port: 5222, client: xmppClient(xmpp.NSClient), server: xmppServer(xmpp.NSClient)})
	register(&spec{name: XMPPServer, port: 5269, client: xmppClient(xmpp.NSServer), server: xmppServer(xmpp.NSServer)})
	registerImplicit(XMPPS, XMPP, 5223)
	registerImplicit(XMPPSServer, XMPPServer, 5270)
	register(&spec{name: LDAP, port: 389, client: ldapClient(), server: ldapServer()})
	registerImplicit(LDAPS, LDAP, 636)
	register(&spec{name: FTP, port: 21, client: ftpClient(), server: ftpServer()})
	registerImplicit(FTPS, FTP, 990)
	register(&spec{name: NNTP, port: 119, client: nntpClient(), server: nntpServer()})
	registerImplicit(NNTPS, NNTP, 563)
	register(&spec{name: Sieve, port: 4190, client: sieveClient(), server: sieveServer()})
	register(&spec{name: Postgres, port: 5432, client: postgresClient(), server: postgresServer()})
	// Direct SSL shares the port. It needs ALPN "postgresql" on both sides:
	// PostgreSQL 17 servers reject direct SSL without it.
	registerImplicit(PostgresDirect, Postgres, 5432)
	lookupSpec(PostgresDirect).alpn = []string{postgres.ALPN}
	register(&spec{name: MySQL, port: 3306, client: mysqlClient(), server: mysqlServer()})
	register(&spec{name: IRC, port: 6667, client: ircClient(), server: ircServer()})
	registerImplicit(IRCS, IRC, 6697)
	register(&spec{name: HTTP, port: 80, client: httpClient(), server: httpServer()})
	registerImplicit(HTTPS, HTTP, 443)
}
