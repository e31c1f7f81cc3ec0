package registry

import "io"

// ProbeConn is the bare plaintext session check's probes hold, for the
// probes that need more than lines (ConnProbes): bytes for the
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

// ConnProbes is what check knows of one protocol beyond the other fields
// of Probes (Probes.Conn), where a probe needs a ProbeConn or a TLS
// session of its own, or judges what only that protocol sends. A zero
// field means the protocol needs nothing there.
type ConnProbes struct {
	// Login tries a login as user with password on a fresh plaintext
	// session, from the greeting on (SMTP's AUTH after its EHLO, the
	// databases' raw packets); it plays the part Probes.Login plays for
	// the line protocols. The password is throwaway and must be shown as
	// <random>.
	Login func(c ProbeConn, user, password string) Login
	// LoginSkip, when set, is asked before Login, with the capabilities
	// advertised before TLS and whether the target is a submission
	// service: a non-empty answer is why no login is tried ("n/a (...)").
	LoginSkip func(caps []string, submission bool) string
	// PlaintextAnswer, for a protocol without a go-ahead (MySQL), judges
	// what the server sent after its greeting when the handshake that
	// followed the pipelined request failed: a description ("" when
	// nothing came) and whether the request was executed in plaintext.
	PlaintextAnswer func(got []byte) (what string, executed bool)
	// Describe names the bytes read inside TLS, for evidence; nil shows
	// their length and printable part.
	Describe func(b []byte) string
	// NoSecondUpgrade says why a second upgrade inside TLS cannot be
	// observed ("" when it can).
	NoSecondUpgrade string
	// PartialJudge classifies a line read inside TLS after the
	// partial-line probe's sentinel: Ours (the sentinel was answered as
	// sent), Pipelined (it was joined to the fragment), Ignore or
	// Undecided.
	PartialJudge func(line string) int
	// Plain are further probes, each on a fresh plaintext session of its
	// own; check runs those it knows by name and reports "n/a" for a
	// name a protocol does not list.
	Plain []PlainProbe
	// Injection is a further command-injection probe on a session of its
	// own (PostgreSQL's after GSSENCRequest); nil where there is none.
	Injection *InjectionVariant
	// OwnResponse, for a protocol whose server answers the upgrade
	// request again inside TLS (HTTP, RFC 2817 §3.3), reads past that
	// answer, so that the command-injection probe sees only what follows;
	// an error means nothing follows.
	OwnResponse func(c LineReader) error
	// QuoteAnswer shows the lines the command-injection probe read as one
	// quoted string (CRLF-joined) in evidence, instead of space-joined.
	QuoteAnswer bool
	// NotRequired says why the capabilities a server advertised before
	// TLS let a client go on without it ("" when they do not); has tests
	// for one capability.
	NotRequired func(has func(string) bool, caps []string) string
	// AuthArgs drops from the arguments of a pre-TLS AUTH capability
	// what is not a login (FTP's AUTH TLS is the upgrade itself).
	AuthArgs func(args []string) []string
	// Sessions are probes run inside TLS, each on a session of its own;
	// check runs those it knows by name and reports "n/a" for the
	// verdicts of one a protocol does not list.
	Sessions []SessionProbe
}

// TLSConn is a TLS session as check's probes hold it: lines without
// their CRLF, or bytes, from one buffer, and writes, all within the
// probe's deadline.
type TLSConn interface {
	LineReader
	io.Writer
}

// SessionProbe is a probe check runs inside TLS on a session of its own
// (ConnProbes.Sessions), upgraded with nothing sent after the upgrade (no
// EHLO, no PBSZ and PROT).
type SessionProbe struct {
	// Name is the probe's name in check's timings.
	Name string
	// Verdicts are the names of the verdicts it gives (each also the
	// name of the finding it may raise): all "n/a" where the protocol
	// lacks the probe, all "error: ..." when the session cannot be opened.
	Verdicts []string
	// Run speaks inside TLS and reports each verdict, timed from the
	// previous one, with the finding's evidence ("" for none).
	Run func(s ProbeSession, report func(name, verdict, evidence string))
}

// ProbeSession is the TLS session a SessionProbe gets.
type ProbeSession interface {
	TLSConn
	// Fresh opens another plaintext session, and the way to start TLS on
	// it once the server agreed, for a probe that compares with another
	// path to the upgrade; check closes it after Run.
	Fresh() (c ProbeConn, startTLS func() (TLSConn, error), err error)
}

// LineReader is how check's probes read a TLS session: lines without
// their CRLF, or bytes, from one buffer, within the probe's deadline.
type LineReader interface {
	ReadLine() (string, error)
	io.Reader
}

// InjectionVariant is a command-injection probe on another path to the
// upgrade (ConnProbes.Injection). check folds its verdict into the
// command-injection probe's.
type InjectionVariant struct {
	// Label names the variant in the verdict.
	Label string
	// Run speaks from the connection on and calls startTLS once the
	// server agreed to TLS; startTLS returns the TLS session, its reads
	// bounded by the wait for an answer to the pipelined request. Run
	// returns the verdict and, with "fail", the finding's evidence.
	Run func(c ProbeConn, startTLS func() (TLSConn, error)) (verdict, evidence string)
}

// PlainProbe is a probe check runs on a fresh plaintext session
// (ConnProbes.Plain), named by the finding it may raise.
type PlainProbe struct {
	// Name is the probe's and its finding's name in check's report.
	Name string
	// Rounds bounds the whole session, in phase timeouts.
	Rounds int
	// Run speaks from the greeting on; it returns the verdict ("pass",
	// "fail", "inconclusive: ...", "error: ...") and, with "fail", the
	// finding's evidence.
	Run func(c ProbeConn) (verdict, evidence string)
}
