package serve

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// session is one connection's application state.
type session struct {
	c  *starttls.Conn
	o  *Options
	br *bufio.Reader
}

// maxLine bounds a command line inside TLS.
const maxLine = registry.ServeMaxLine

var errLineTooLong = registry.ErrServeLineTooLong

func (s *session) readLine() (string, error) {
	_ = s.c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
	var b []byte
	for {
		frag, err := s.br.ReadSlice('\n')
		b = append(b, frag...)
		if len(b) > maxLine {
			return "", errLineTooLong
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

func (s *session) write(lines ...string) error {
	_ = s.c.SetWriteDeadline(time.Now().Add(s.o.IdleTimeout))
	_, err := io.WriteString(s.c, strings.Join(lines, "\r\n")+"\r\n")
	return err
}

func (s *session) secure() bool { return s.c.TLS != nil }

// checkUser reports whether the credentials are accepted.
func (s *session) checkUser(user, pass string) bool {
	if s.o.Users == nil {
		return user != ""
	}
	p, ok := s.o.Users[user]
	return ok && p == pass
}

// drainApp reads and discards until the client goes quiet or leaves.
func drainApp(ctx context.Context, s *session) {
	buf := make([]byte, 4096)
	for i := 0; i < 1<<16 && ctx.Err() == nil; i++ {
		_ = s.c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
		if _, err := s.br.Read(buf); err != nil {
			return
		}
	}
}

var mailSeq struct {
	sync.Mutex
	n int
}

// readN reads n bytes of a literal and the rest of its command line.
func (s *session) readN(n int) (string, error) {
	_ = s.c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
	b := make([]byte, n)
	if _, err := io.ReadFull(s.br, b); err != nil {
		return "", err
	}
	if _, err := s.readLine(); err != nil {
		return "", err
	}
	return string(b), nil
}

// appSession is a session as the applications in internal/proto/NAME
// see it (registry.ServeConn).
type appSession struct{ s *session }

func (l appSession) ReadLine() (string, error)        { return l.s.readLine() }
func (l appSession) ReadN(n int) (string, error)      { return l.s.readN(n) }
func (l appSession) Write(lines ...string) error      { return l.s.write(lines...) }
func (l appSession) Secure() bool                     { return l.s.secure() }
func (l appSession) Implicit() bool                   { return l.s.c.Implicit }
func (l appSession) CheckUser(user, pass string) bool { return l.s.checkUser(user, pass) }
func (l appSession) Hostname() string                 { return l.s.o.Hostname }
func (l appSession) IdleTimeout() time.Duration       { return l.s.o.IdleTimeout }
func (l appSession) TLSConfig() *tls.Config           { return l.s.o.TLSConfig }
func (l appSession) Users() map[string]string         { return l.s.o.Users }

func (l appSession) Conn() net.Conn { return &bufferedConn{Conn: l.s.c, r: l.s.br} }

func (l appSession) Upgrade() registry.ServeUpgrade {
	c := l.s.c
	return registry.ServeUpgrade{Protocol: string(c.Protocol), Greeting: c.Greeting,
		CapabilitiesBefore: c.CapabilitiesBefore, ClientName: c.ClientName}
}

// Store writes content as a new file in MailDir (if set) and returns its
// id.
func (l appSession) Store(ext, content string) (string, error) {
	mailSeq.Lock()
	mailSeq.n++
	id := fmt.Sprintf("%d.%d", time.Now().UnixNano(), mailSeq.n)
	mailSeq.Unlock()
	if l.s.o.MailDir == "" {
		return id, nil
	}
	return id, os.WriteFile(filepath.Join(l.s.o.MailDir, id+ext), []byte(content), 0o600)
}

// bufferedConn reads through the session's buffer, so nothing already
// read by the upgrade is lost.
type bufferedConn struct {
	net.Conn
	r io.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
