package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// ServeConn is the session serve hands every application: the line
// Session, plus what the applications that are not line-based (LDAP,
// PostgreSQL, MySQL, XMPP, HTTP) or that need the connection itself (FTP
// data connections, IMAP literals, SMTP's stored mail) use. A line-based
// application that needs nothing more takes a Session and registers as
// App; one that does registers ServeConnApp(app).
type ServeConn interface {
	Session
	// Conn is the upgraded connection. Its reads go through the
	// session's buffer, so nothing the upgrade or ReadLine already read
	// is lost; its deadlines are the application's to set, IdleTimeout
	// from each read or write.
	Conn() net.Conn
	IdleTimeout() time.Duration
	// TLSConfig is the configuration serve upgraded with (FTP protects
	// its data connections with it).
	TLSConfig() *tls.Config
	// Users are the credentials serve accepts, nil when it accepts any
	// (what CheckUser answers from); MySQL's challenge needs a password
	// itself.
	Users() map[string]string
	// Upgrade is what the server half learned before the application
	// took over.
	Upgrade() ServeUpgrade
	// Store writes content as a new file, named by its id and ext, into
	// serve's mail directory when it has one, and returns the id.
	Store(ext, content string) (id string, err error)
}

// ServeUpgrade is what the upgrade knew of a session when serve handed it
// to the application (fields of starttls.Conn).
type ServeUpgrade struct {
	// Protocol is the protocol served, not its base: "lmtp" and
	// "submission" share SMTP's application.
	Protocol string
	// Greeting is the server's greeting (MySQL's carries the version).
	Greeting string
	// CapabilitiesBefore are the capabilities the server half announced
	// before TLS (MySQL's "AUTH-DATA" holds the scramble).
	CapabilitiesBefore []string
	// ClientName is the name the client gave in a hello before TLS (SMTP
	// EHLO), "" when it gave none.
	ClientName string
}

// ErrServeLineTooLong is the error ReadLine returns for a line beyond
// ServeMaxLine.
var ErrServeLineTooLong = errors.New("line too long")

// ServeMaxLine bounds a command line, and an IMAP literal, inside TLS.
const ServeMaxLine = 16 << 10

// ServeConnApp makes an application that needs a ServeConn an App. Serve
// hands every application a ServeConn; on any other Session (a test's
// script) the application returns at once.
func ServeConnApp(app func(ctx context.Context, c ServeConn)) App {
	return func(ctx context.Context, s Session) {
		if c, ok := s.(ServeConn); ok {
			app(ctx, c)
		}
	}
}

// ServePlain completes an AUTHENTICATE PLAIN (IMAP) or AUTH PLAIN (POP3):
// ir is the initial response, or "" to ask for it with a "+ "
// continuation. It reports whether serve accepts the credentials, and
// broken when the session failed while asking.
func ServePlain(s Session, ir string) (accepted, broken bool) {
	if ir == "" {
		var err error
		if s.Write("+ ") != nil {
			return false, true
		}
		if ir, err = s.ReadLine(); err != nil {
			return false, true
		}
	}
	u, p, ok := PlainCredentials(ir)
	return ok && s.CheckUser(u, p), false
}
