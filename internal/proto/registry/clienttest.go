package registry

import (
	"bufio"
	"errors"
	"net"
	"strconv"
	"strings"
)

// ClientTest is how clienttest's scenario server plays one protocol
// before TLS, to see what a client does there: which messages leak, how
// the upgrade is offered, answered, refused or followed by injected
// bytes. Exactly one of Line and Dialect is set. Inside TLS, clienttest
// runs serve's application for a Line protocol and the Dialect's handler
// otherwise.
type ClientTest struct {
	// Line is the personality of a protocol that is a verb per line with
	// a numbered or tagged reply.
	Line *CTLine
	// Dialect is the handler of any other protocol (BER, length-prefixed
	// packets, XML, HTTP heads, IRC registration state).
	Dialect *CTDialect
	// Leaks name the messages that must never go out in plaintext: they
	// carry credentials, mail or data. A Line protocol's are verbs; a
	// Dialect's the first word of a message's transcript text.
	Leaks []string
	// Leak, when set, replaces Leaks: for messages whose name alone does
	// not tell (an HTTP request leaks with credentials or a body).
	Leak func(text string) bool
	// Scenarios are the protocol's own scenarios, after the common ones.
	Scenarios []CTScenario
	// Referral is the plaintext server a referral scenario sends the
	// client to (nil: the protocol has no referrals).
	Referral *CTReferral
	// LoginLine (a Line protocol) or LoginRaw (a Dialect) is what this
	// module's own client sends inside TLS to log in as user/secret.
	LoginLine string
	LoginRaw  []byte
}

// CTLine is how a line protocol's server talks before TLS: what the
// scenarios change (capabilities, the answer to the upgrade command) and
// what they watch for. Replies end in CRLF.
type CTLine struct {
	Greeting string
	// CapsVerbs ask for capabilities; the reply comes from Caps.
	CapsVerbs []string
	// Caps answers verb, one of CapsVerbs; offer says whether the upgrade
	// is listed, extra lines are added (tampering, mechanism exposure).
	Caps func(tag, verb string, offer bool, extra []string) string
	// CapsInGreeting: the greeting is the capability list (ManageSieve),
	// built by Caps with an empty tag and verb.
	CapsInGreeting bool
	// UpgradeVerb starts TLS when its argument is one of UpgradeArgs
	// (any argument when there are none), compared case-insensitively.
	UpgradeVerb string
	UpgradeArgs []string
	GoAhead     func(tag string) string
	// Refusals are named answers to the upgrade command that are not a
	// go-ahead, "{tag}" replaced by the command's tag; NoTLS is the key
	// of the one a server without TLS gives.
	Refusals map[string]string
	NoTLS    string
	// Inject is what a response-injection attacker appends to the
	// go-ahead: a plausible answer to the client's first command inside TLS.
	Inject func(tag string) string
	// Mechanisms are plaintext authentication offers (mechanism
	// exposure); a protocol without them gets no mechanism scenarios.
	Mechanisms []string
	// OK answers any other verb so that the client goes on talking.
	OK func(tag, verb string) string
	// Quit verbs end the session after OK's answer and Farewell's, when set
	// (IMAP's untagged BYE and tagged OK).
	Quit     []string
	Farewell func(tag string) string
	// Tagged reports whether commands carry tags (IMAP).
	Tagged bool
	// CapsAfterTLS is what the server sends unasked as soon as TLS is up
	// (ManageSieve re-sends its capabilities, RFC 5804 §2.2); the client
	// speaks second inside TLS.
	CapsAfterTLS string
	// Wrap, when set, stands between the client and serve's application
	// inside TLS, for what the application does not do.
	Wrap func(net.Conn) net.Conn
}

// CTDialect describes a protocol clienttest serves with a handler per
// connection. The judge sees every message as one transcript line whose
// first word names it, so verdicts are reached as for line protocols.
type CTDialect struct {
	// Open returns the handler for one connection; offer is false when
	// the scenario strips the upgrade from what the server advertises.
	Open func(offer bool) CTHandler
	// Refusals name the dialect's refusal answers (a key of
	// CTHandler.Refuse) with their summaries.
	Refusals map[string]string
	// StripSummary says what strip-capability does in this protocol.
	StripSummary string
	// NoGoAhead: the server never answers the upgrade request (MySQL), so
	// there is nothing to inject after.
	NoGoAhead bool
	// InjectMarker, when set, is a token in the injected bytes; a client
	// that echoes it acted on them. For protocols whose clients pipeline
	// inside TLS, where counting early messages would mislead.
	InjectMarker string
}

// CTMsg is one framed client message.
type CTMsg struct {
	Text string // transcript text, the message's name first
	Data any    // what the handler keeps of it for its answers
}

// CTHandler is one connection's scenario server for a dialect. Frame runs
// on a reader goroutine inside TLS while the other methods answer, so
// only TLSStarted may reset what Frame keeps.
type CTHandler interface {
	// Frame reads the next client message, bounded in size.
	Frame(r *bufio.Reader) (CTMsg, error)
	// Greeting is what the server says first (nil: the client speaks first).
	Greeting() []byte
	// IsUpgrade tells whether m asks for TLS.
	IsUpgrade(m CTMsg) bool
	// GoAhead answers the upgrade request (nil: TLS follows unanswered).
	GoAhead(m CTMsg) []byte
	// Inject is a forged answer to the client's first message inside TLS.
	Inject(m CTMsg) []byte
	// Refuse answers the upgrade request when TLS is not to be had: key
	// is a refusal of the dialect, or "" when the upgrade was not offered.
	Refuse(key string, m CTMsg) (reply []byte, hangUp bool)
	// TLSStarted resets framing state and returns what the server sends
	// unasked once TLS is up (HTTP: the answer to the upgrade request).
	TLSStarted(upgrade CTMsg) []byte
	// Handle answers any other message, in plaintext or inside TLS.
	Handle(m CTMsg, inTLS bool) (reply []byte, hangUp bool)
}

// CTScenario is a scenario only one protocol has. Kind is how it is
// judged: "strip" (nothing sensitive may follow in plaintext), "early-ok"
// (a go-ahead before the command), "referral" or "spoof" (terminal
// escapes in server text; see CTEscapeBait).
type CTScenario struct {
	Name, Kind, Summary, Expect string
	// Greeting replaces the greeting; "{referral}" in it becomes the
	// address of the Referral server.
	Greeting string
	// Answers replace the reply to these verbs (SMTP: EHLO refused).
	Answers map[string]string
	// RefuseText answers the upgrade command, "{tag}" replaced.
	RefuseText string
	// EarlyOK appends a go-ahead for the predicted next tag to the
	// capability reply, instead of answering the upgrade command.
	EarlyOK bool
	// Referral starts the protocol's Referral server.
	Referral bool
}

// CTReferral is a plaintext-only server a referral points to, offering
// authentication without STARTTLS.
type CTReferral struct {
	Greeting string
	// Answer replies to one line; last ends the session after the reply.
	Answer func(line string) (reply string, last bool)
}

// CTEscapeBait sets the window title, clears the screen and prints a red
// phishing line: what a terminal does with it when a client echoes it raw.
const CTEscapeBait = "\x1b]0;Mail: account locked\x07\x1b[2J\x1b[1;31mAccount locked: log in again at https://login.example.test\x1b[0m"

// CTSplit returns a command line's tag (when tagged), upper-cased verb and
// the rest.
func CTSplit(tagged bool, line string) (tag, verb, arg string) {
	rest := line
	if tagged {
		tag, rest, _ = strings.Cut(line, " ")
	}
	verb, arg, _ = strings.Cut(rest, " ")
	return tag, strings.ToUpper(verb), arg
}

// CTNextTag guesses the tag a client uses after tag: the trailing number
// plus one, as almost every client numbers its commands.
func CTNextTag(tag string) string {
	i := len(tag)
	for i > 0 && tag[i-1] >= '0' && tag[i-1] <= '9' {
		i--
	}
	if i == len(tag) {
		return tag + "1"
	}
	n, err := strconv.Atoi(tag[i:])
	if err != nil {
		return tag + "1"
	}
	num := strconv.Itoa(n + 1)
	if w := len(tag) - i; len(num) < w {
		num = strings.Repeat("0", w-len(num)) + num
	}
	return tag[:i] + num
}

// CTMaxPacket bounds one client message of a dialect: nothing a client
// sends while logging in comes near 64 KiB.
const CTMaxPacket = 64 << 10

// CTInjectMarker is in the bytes injected for protocols whose clients
// pipeline inside TLS (CTDialect.InjectMarker).
const CTInjectMarker = "clienttest-injected"

// ErrCTTooLarge is a client message beyond a dialect's bounds.
var ErrCTTooLarge = errors.New("message too large")

// CTReadLine reads one line of at most 8 KiB (IRC with message tags; an
// HTTP header line), without its CRLF.
func CTReadLine(r *bufio.Reader) (string, error) {
	line, err := r.ReadSlice('\n')
	if err == bufio.ErrBufferFull || len(line) > 8<<10 {
		return "", ErrCTTooLarge
	}
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(line), "\r\n"), nil
}
