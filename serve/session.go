package serve

import (
	"io"
	"time"
)

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

// lineSession is a session as the applications in internal/proto/NAME
// see it (registry.Session).
type lineSession struct{ s *session }

func (l lineSession) ReadLine() (string, error)        { return l.s.readLine() }
func (l lineSession) ReadN(n int) (string, error)      { return l.s.readN(n) }
func (l lineSession) Write(lines ...string) error      { return l.s.write(lines...) }
func (l lineSession) Secure() bool                     { return l.s.secure() }
func (l lineSession) Implicit() bool                   { return l.s.c.Implicit }
func (l lineSession) CheckUser(user, pass string) bool { return l.s.checkUser(user, pass) }
func (l lineSession) Hostname() string                 { return l.s.o.Hostname }
