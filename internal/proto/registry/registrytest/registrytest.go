// Package registrytest runs a protocol folder's serve application
// without package serve, for the folder's own tests and fuzz targets: an
// internal test of internal/proto/NAME cannot import serve or the root
// package, since both import every folder.
package registrytest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// Session is a registry.ServeConn over a net.Conn with serve's limits: a
// line is bounded by registry.ServeMaxLine and every read and write has
// the idle deadline.
type Session struct {
	C       net.Conn
	TLS     bool // what Secure reports
	Host    string
	Idle    time.Duration
	UserMap map[string]string // nil accepts any non-empty user, as serve does
	Up      registry.ServeUpgrade

	br *bufio.Reader
}

var _ registry.ServeConn = (*Session)(nil)

func (s *Session) reader() *bufio.Reader {
	if s.br == nil {
		s.br = bufio.NewReaderSize(s.C, 64<<10)
	}
	return s.br
}

// ReadLine returns the next line without its line end.
func (s *Session) ReadLine() (string, error) {
	_ = s.C.SetReadDeadline(time.Now().Add(s.Idle))
	var b []byte
	for {
		frag, err := s.reader().ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > registry.ServeMaxLine {
			return "", registry.ErrServeLineTooLong
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}

// ReadN returns n raw bytes and consumes the rest of their line.
func (s *Session) ReadN(n int) (string, error) {
	_ = s.C.SetReadDeadline(time.Now().Add(s.Idle))
	b := make([]byte, n)
	if _, err := io.ReadFull(s.reader(), b); err != nil {
		return "", err
	}
	if _, err := s.ReadLine(); err != nil {
		return "", err
	}
	return string(b), nil
}

// Write sends each line followed by CRLF.
func (s *Session) Write(lines ...string) error {
	_ = s.C.SetWriteDeadline(time.Now().Add(s.Idle))
	_, err := io.WriteString(s.C, strings.Join(lines, "\r\n")+"\r\n")
	return err
}

// Secure reports TLS.
func (s *Session) Secure() bool { return s.TLS }

// Implicit is false: the session was upgraded, if at all, by STARTTLS.
func (s *Session) Implicit() bool { return false }

// CheckUser answers from UserMap as serve does.
func (s *Session) CheckUser(user, pass string) bool {
	if s.UserMap == nil {
		return user != ""
	}
	p, ok := s.UserMap[user]
	return ok && p == pass
}

// Hostname is Host.
func (s *Session) Hostname() string { return s.Host }

// Conn reads through the session's buffer, as serve's does.
func (s *Session) Conn() net.Conn { return &bufferedConn{Conn: s.C, r: s.reader()} }

// IdleTimeout is Idle.
func (s *Session) IdleTimeout() time.Duration { return s.Idle }

// TLSConfig is nil: the session has no certificate to offer.
func (s *Session) TLSConfig() *tls.Config { return nil }

// Users is UserMap.
func (s *Session) Users() map[string]string { return s.UserMap }

// Upgrade is Up.
func (s *Session) Upgrade() registry.ServeUpgrade { return s.Up }

// Store keeps nothing and returns a fixed id.
func (s *Session) Store(string, string) (string, error) { return "1", nil }

type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// RunOn runs app on in, inside "TLS" when secure, as serve would with the
// user "user" (password "secret"), and drops what it writes. It returns
// when the input ends; a fuzz target calls it to find panics and hangs.
func RunOn(app registry.App, in []byte, secure bool) {
	s := &Session{C: &inputConn{r: bytes.NewReader(in)}, TLS: secure, Host: "localhost",
		Idle: time.Second, UserMap: map[string]string{"user": "secret"}}
	app(context.Background(), s)
}

// inputConn feeds a fixed input and drops the output.
type inputConn struct {
	net.Conn // nil: only the methods below are used
	r        *bytes.Reader
}

func (c *inputConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *inputConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *inputConn) Close() error                     { return nil }
func (c *inputConn) SetDeadline(time.Time) error      { return nil }
func (c *inputConn) SetReadDeadline(time.Time) error  { return nil }
func (c *inputConn) SetWriteDeadline(time.Time) error { return nil }
