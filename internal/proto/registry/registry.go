// Package registry maps a protocol name ("smtp", "submission", "sieve",
// ...) to one description of that protocol: its default port, its
// implicit-TLS twin and ALPN, the two halves of its upgrade dialogue,
// from which the root package builds its table, and what the module's
// tools know of it beyond the dialogue: the probes check sends to it,
// the application serve runs behind it and the defaults serve runs it
// with, the proxy's filters and how clienttest plays it. Each protocol
// registers its descriptions from its folder under internal/proto
// (internal/proto/sieve/protocol.go, ...), in one init function, the way
// zgrab2 modules register themselves; the package internal/proto/all
// imports every such folder so that a tool sees them all. The root
// package, check, serve, proxy and clienttest look a protocol up here
// instead of switching on its name.
//
// It imports nothing of the module but internal/relayq and
// internal/proto/dialog (for the upgrade dialogues a Protocol carries,
// which the root package runs), neither of which imports the module back,
// so that any codec package can register without an import cycle; names
// are plain strings, the values of starttls.Protocol.
package registry

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// What a line read inside TLS tells the command-injection probe about
// its sentinel (Probes.Judge).
const (
	Undecided = iota // the line does not tell which command it answers
	Ours             // the first reply answers the sentinel: the pipelined command was dropped
	Pipelined        // the first reply answers the pipelined command: it was executed
	Ignore           // not a reply (IRC notices, IMAP untagged data)
)

// Probes is what check's pre-TLS probes send to one protocol and how they
// read the answers. A zero field means the probe does not apply and
// reports "n/a".
type Probes struct {
	// Injection is a harmless command pipelined after the upgrade
	// command; a server that answers it inside TLS executed plaintext an
	// attacker could have injected.
	Injection string
	// Partial is an unfinished line pipelined after the upgrade command
	// (security catalogue §(a)1); empty where the probe cannot tell.
	Partial string
	// Sentinel is a command check sends itself inside TLS right after
	// the handshake, so that a safe server's answer ends the wait at once.
	Sentinel string
	// Judge classifies a line read after the sentinel, replies complete
	// replies in; capa says the server answered CAPA before TLS (POP3).
	// Nil: every line is Undecided.
	Judge func(line string, replies int, capa bool) int
	// ReplyEnds reports whether line is the last line of a reply. Nil:
	// every line is a whole reply.
	ReplyEnds func(line string) bool
	// AfterTLS consumes the lines a server legitimately sends inside TLS
	// before the client speaks; it returns true on the last one
	// (ManageSieve re-sends its capabilities, ending with OK).
	AfterTLS func(line string) (done bool)
	// Executed, for binary protocols, tells from the bytes read inside
	// TLS whether the pipelined request was executed, as opposed to the
	// server noticing and refusing it.
	Executed func(b []byte) bool
	// UpgradeName and PipelinedName name the upgrade command and the
	// pipelined request in evidence, where they are not a STARTTLS line
	// and a command line.
	UpgradeName, PipelinedName string
	// Login tries a login as user with password on a fresh plaintext
	// session, from the greeting on, and reports how the server took it.
	// The password is throwaway and must be shown as <random>.
	Login func(c LineConn, user, password string) Login
	// LoginInvited says why the capabilities a server advertised before
	// TLS invite a client to log in there ("" when they do not); has
	// tests for one capability, case-insensitively.
	LoginInvited func(has func(string) bool, caps []string) string
	// Conn is what check needs beyond these fields (probeconn.go); nil
	// where it needs nothing more.
	Conn *ConnProbes
}

// How a server treated a login attempt made before TLS (Login.Result).
const (
	LoginUndecided = iota // not tested, or the answer does not tell
	LoginRefused          // refused without looking at the credentials
	LoginProcessed        // the credentials were taken (checked, or the password asked for)
)

// Login is what a plaintext-login probe saw.
type Login struct {
	Result int
	Sent   string // the command, the password shown as <random>
	Reply  string
	Note   string // why the verdict is undecided
}

// LineConn is a bare plaintext session as check's probes hold it: each
// call has its own deadline, and lines come without their CRLF.
type LineConn interface {
	Line() (string, error)
	Send(line string) error
}

// Protocol is everything the module knows about one protocol name (a
// starttls.Protocol value): the root package's table entry (port,
// dialogue halves, implicit-TLS twin) and what the tools add to it. Each
// protocol folder registers one Protocol per name it speaks (SMTP: smtp,
// submission, lmtp, sharing values) from the init of its protocol.go;
// the values themselves live in the folder's files by role.
type Protocol struct {
	// Name is the protocol, a starttls.Protocol value, lower-case.
	Name string
	// Port is the default port.
	Port int
	// Client and Server are the two halves of the upgrade dialogue the
	// root package runs.
	Client *dialog.ClientHalf
	Server *dialog.ServerHalf
	// Implicit, when set, is the same dialogue inside TLS from the first
	// byte (smtps for submission); nil without an implicit-TLS twin.
	Implicit *Twin
	// Probes are check's pre-TLS probes.
	Probes Probes
	// Serve is the application serve runs after the upgrade; nil where
	// there is none (serve then drains and closes).
	Serve App
	// ServeCapabilities are the capabilities serve advertises when its
	// user gives none (ManageSieve: "SASL PLAIN", as its application
	// takes AUTHENTICATE PLAIN).
	ServeCapabilities []string
	// Proxy is the proxy's application; nil where the proxy does not
	// relay the protocol.
	Proxy *ProxyApp
	// ClientTest is how clienttest's scenario server plays the protocol;
	// nil where clienttest does not speak it (and for variants such as
	// submission, which clienttest plays as their base).
	ClientTest *ClientTest
}

// Twin is the implicit-TLS variant of a Protocol: its own name and
// port, the same dialogue halves.
type Twin struct {
	Name string
	Port int
	// ALPN both sides offer unless the caller set its own (PostgreSQL
	// direct SSL: "postgresql").
	ALPN []string
}

// byName is filled by the protocol folders' init functions and only
// read afterwards, so it needs no lock. taken holds every name given,
// twins' too, so that no name means two things.
var (
	byName = map[string]*Protocol{}
	taken  = map[string]bool{}
)

// Register adds p; protocol folders call it once per protocol name from
// the init of their protocol.go. A name given twice (as a protocol or a
// twin), or a description without a lower-case name, a port or both
// dialogue halves, is a programming error and panics with what is wrong.
func Register(p *Protocol) {
	names := []string{p.Name}
	if p.Implicit != nil {
		names = append(names, p.Implicit.Name)
	}
	for i, n := range names {
		switch {
		case n == "" || n != strings.ToLower(n):
			panic(fmt.Sprintf("registry: protocol %q: name empty or not lower-case", n))
		case taken[n] || slices.Contains(names[:i], n):
			panic(fmt.Sprintf("registry: protocol %q registered twice", n))
		}
	}
	switch {
	case p.Port <= 0 || p.Port > 65535:
		panic(fmt.Sprintf("registry: protocol %q: port %d out of range", p.Name, p.Port))
	case p.Implicit != nil && (p.Implicit.Port <= 0 || p.Implicit.Port > 65535):
		panic(fmt.Sprintf("registry: protocol %q: port %d out of range", p.Implicit.Name, p.Implicit.Port))
	case p.Client == nil || p.Server == nil:
		panic(fmt.Sprintf("registry: protocol %q: no client or server half", p.Name))
	}
	for _, n := range names {
		taken[n] = true
	}
	byName[p.Name] = p
}

// Lookup returns the description of the protocol name, or nil when no
// folder registered one. Twins are not looked up: their description is
// their base's.
func Lookup(name string) *Protocol { return byName[name] }

// Names lists the registered protocols (not their twins), sorted.
func Names() []string { return slices.Sorted(maps.Keys(byName)) }
