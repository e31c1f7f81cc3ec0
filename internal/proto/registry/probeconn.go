package registry

import (
	"fmt"
	"io"
)

// ProbeConn is the bare plaintext session check's probes hold, for the
// logins that need more than lines (ConnLogin): bytes for the
// binary protocols (MySQL, PostgreSQL) and the name the checker gives
// itself (SMTP's EHLO). Lines and bytes come from one buffer; every call
// has its own deadline, and the whole session the probe's.
type ProbeConn interface {
	LineConn
	io.Reader
	io.Writer
	// LocalName is the name the checker gives itself in a hello.
	LocalName() string
}

// ConnLogin is a plaintext-login probe that needs a ProbeConn: SMTP's
// (the checker's EHLO name), MySQL's and PostgreSQL's (raw packets). It
// plays the part Probes.Login plays for the line protocols.
type ConnLogin struct {
	// Login tries a login as user with password on a fresh plaintext
	// session, from the greeting on; the password is throwaway and must
	// be shown as <random>.
	Login func(c ProbeConn, user, password string) Login
	// Skip, when set, is asked first, with the capabilities advertised
	// before TLS and whether the target is a submission service: a
	// non-empty answer is why no login is tried ("n/a (...)").
	Skip func(caps []string, submission bool) string
}

// connLogins is filled by the protocol folders' init functions and only
// read afterwards, so it needs no lock.
var connLogins = map[string]*ConnLogin{}

// RegisterConnLogin sets the ConnLogin of the base protocols names; a
// folder calls it from an init of its own (login.go), so that it does not
// depend on the order of the folder's init functions. A second one for a
// name panics, as Register does.
func RegisterConnLogin(l *ConnLogin, names ...string) {
	for _, name := range names {
		if _, dup := connLogins[name]; dup || name == "" {
			panic(fmt.Sprintf("registry: login of %q registered twice or unnamed", name))
		}
		connLogins[name] = l
	}
}

// ConnLoginOf returns the ConnLogin of base protocol name, or nil.
func ConnLoginOf(name string) *ConnLogin { return connLogins[name] }
