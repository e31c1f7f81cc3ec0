// Package registry maps a base protocol name ("smtp", "sieve", ...) to
// what the module's tools know about that protocol beyond its dialogue:
// the probes check sends to it, the application serve runs behind it and
// the defaults serve runs it with, and the proxy's filters. Each
// protocol registers its own description from its folder under
// internal/proto (internal/proto/sieve/probes.go, ...), in an init
// function, the way zgrab2 modules register themselves; the package
// internal/proto/all imports every such folder so that a tool sees them
// all. check and serve look a protocol up here instead of switching on
// its name.
//
// It imports nothing of the module but internal/relayq and
// internal/proto/dialog (for the upgrade dialogues a Scheme carries, which
// the root package runs), neither of which imports the module back, so
// that any codec package can register without an import cycle; names are
// plain strings, the values of starttls.Protocol.
package registry

import (
	"fmt"
	"maps"
	"slices"
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

// Protocol describes one base protocol.
type Protocol struct {
	// Name is the base protocol, a starttls.Protocol value.
	Name string
	// Probes are check's pre-TLS probes.
	Probes Probes
	// Serve is the application serve runs after the upgrade; nil where
	// there is none (serve then drains and closes). Folders set it here
	// or with RegisterServe.
	Serve App
	// ServeCapabilities are the capabilities serve advertises when its
	// user gives none (ManageSieve: "SASL PLAIN", as its application
	// takes AUTHENTICATE PLAIN).
	ServeCapabilities []string
	// Proxy is the proxy's application; nil where the proxy does not
	// relay the protocol. Folders set it with RegisterProxy.
	Proxy *ProxyApp
	// ClientTest is how clienttest's scenario server plays the protocol
	// (nil: clienttest does not speak it); set by RegisterClientTest.
	ClientTest *ClientTest
}

// byName is filled by the protocol folders' init functions and only
// read afterwards, so it needs no lock.
var byName = map[string]*Protocol{}

// Register adds p; protocol folders call it from init. A second
// registration of a name is a programming error and panics, as two
// folders would then disagree.
func Register(p *Protocol) {
	if _, dup := byName[p.Name]; dup || p.Name == "" {
		panic(fmt.Sprintf("registry: protocol %q registered twice or unnamed", p.Name))
	}
	if a := proxies[p.Name]; a != nil {
		p.Proxy = a
	}
	if ct := pendingCT[p.Name]; ct != nil {
		p.ClientTest = ct
		delete(pendingCT, p.Name)
	}
	if a := serveApps[p.Name]; a != nil {
		if p.Serve != nil {
			panic(fmt.Sprintf("registry: protocol %q has two serve applications", p.Name))
		}
		p.Serve = a
	}
	byName[p.Name] = p
}

// Lookup returns the description of the base protocol name, or nil when
// no folder registered one.
func Lookup(name string) *Protocol { return byName[name] }

// Names lists the registered protocols, sorted.
func Names() []string { return slices.Sorted(maps.Keys(byName)) }
