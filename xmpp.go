package starttls

import (
	"bytes"
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls/internal/wire"
)

// XMPP (RFC 6120 §5): client-to-server ("xmpp", jabber:client) and
// server-to-server ("xmpp-server", jabber:server) streams, and their
// implicit-TLS ports (XEP-0368). The dialogue is XML, read token by token
// with encoding/xml from the bounded wire reader, one byte at a time, so
// that nothing past the element being decoded is consumed and the
// "nothing crosses the upgrade" check sees every byte the peer pipelined.

// The XMPP protocols.
const (
	XMPP        Protocol = "xmpp"
	XMPPServer  Protocol = "xmpp-server"
	XMPPS       Protocol = "xmpps"
	XMPPSServer Protocol = "xmpps-server"
)

func init() {
	register(&spec{name: XMPP, port: 5222, client: xmppClient(nsClient), server: xmppServer(nsClient)})
	register(&spec{name: XMPPServer, port: 5269, client: xmppClient(nsServer), server: xmppServer(nsServer)})
	registerImplicit(XMPPS, XMPP, 5223)
	registerImplicit(XMPPSServer, XMPPServer, 5270)
}

// Namespaces of RFC 6120.
const (
	nsClient    = "jabber:client"
	nsServer    = "jabber:server"
	nsStreams   = "http://etherx.jabber.org/streams"
	nsTLS       = "urn:ietf:params:xml:ns:xmpp-tls"
	nsSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"
	nsStreamErr = "urn:ietf:params:xml:ns:xmpp-streams"
)

const (
	xmppStartTLS = "<starttls xmlns='" + nsTLS + "'/>"
	xmppProceed  = "<proceed xmlns='" + nsTLS + "'/>"
	xmppClose    = "</stream:stream>"

	// xmppMaxDepth bounds element nesting below the stream (features need 3).
	xmppMaxDepth = 16
	// xmppMaxElements bounds the elements in one top-level element.
	xmppMaxElements = 1000
	// xmppMaxTokens bounds the tokens read while waiting for one thing
	// (whitespace keep-alives between elements included).
	xmppMaxTokens = 10000
)

// Kinds of malformed XML, for the stream error a server answers with.
var (
	errXMPPNotWellFormed = errors.New("not-well-formed")
	errXMPPRestricted    = errors.New("restricted-xml")
)

// xmlSource feeds encoding/xml one byte at a time from the wire reader
// (an io.ByteReader, so the decoder adds no buffer of its own). prime is
// replayed first: the stream header already read, which restores the
// namespace context for a decoder started in the middle of a stream.
type xmlSource struct {
	r       *wire.Reader
	prime   []byte
	started bool // a '<' came from the wire (a stream starts with markup)
	n       int  // bytes taken from the wire
	max     int  // bound on n for this exchange
	err     error
	raw     []byte // bytes taken from the wire since the last reset (evidence)
}

func (x *xmlSource) ReadByte() (byte, error) {
	if len(x.prime) > 0 {
		b := x.prime[0]
		x.prime = x.prime[1:]
		return b, nil
	}
	if x.err != nil {
		return 0, x.err
	}
	if x.n >= x.max {
		x.err = fmt.Errorf("%w (more than %d bytes of XML in one exchange)", ErrTooMuchData, x.max)
		return 0, x.err
	}
	b, err := x.r.ReadByte()
	if err != nil {
		if err == io.EOF && x.n > 0 {
			err = io.ErrUnexpectedEOF
		}
		x.err = err
		return 0, err
	}
	x.n++
	x.raw = append(x.raw, b)
	if !x.started {
		// Fail fast on a peer that speaks something else (an SMTP banner)
		// instead of waiting for a '<' that never comes.
		switch {
		case b == '<':
			x.started = true
		case b != ' ' && b != '\t' && b != '\r' && b != '\n' && b != 0xEF && b != 0xBB && b != 0xBF:
			x.err = fmt.Errorf("%w: %w: not an XML stream (starts with %q)", ErrProtocol, errXMPPNotWellFormed, x.raw)
			return 0, x.err
		}
	}
	return b, nil
}

// Read exists because xml.NewDecoder takes an io.Reader; the decoder uses
// ReadByte.
func (x *xmlSource) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	b, err := x.ReadByte()
	if err != nil {
		return 0, err
	}
	p[0] = b
	return 1, nil
}

// xmppStream reads one side of an XML stream with limits.
type xmppStream struct {
	src     *xmlSource
	dec     *xml.Decoder
	maxText int
	started bool
}

func newXMPPStream(r *wire.Reader, prime string, maxBytes, maxText int) *xmppStream {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxPreTLSBytes
	}
	src := &xmlSource{r: r, prime: []byte(prime), max: maxBytes, started: prime != ""}
	dec := xml.NewDecoder(src)
	dec.Strict = true
	return &xmppStream{src: src, dec: dec, maxText: maxText}
}

// raw returns the bytes read since the last reset, without leading
// whitespace: the evidence for errors and the transcript.
func (x *xmppStream) raw() string {
	return quote(bytes.TrimLeft(x.src.raw, " \t\r\n"))
}

func (x *xmppStream) reset() { x.src.raw = x.src.raw[:0] }

// token returns the next token, refusing what RFC 6120 §11.1 forbids in a
// stream (DTDs, comments, processing instructions) and oversized text.
// Errors from the wire come back as they are (timeouts, closed, budget);
// malformed XML is ErrProtocol.
func (x *xmppStream) token() (xml.Token, error) {
	t, err := x.dec.Token()
	if err != nil {
		if x.src.err != nil {
			return nil, x.src.err
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: %w: malformed XML: %v", ErrProtocol, errXMPPNotWellFormed, err)
	}
	if x.src.err != nil {
		// The decoder hands over what it had when the wire failed.
		return nil, x.src.err
	}
	first := !x.started
	x.started = true
	switch v := t.(type) {
	case xml.ProcInst:
		if !first || v.Target != "xml" {
			return nil, fmt.Errorf("%w: %w: processing instruction <?%s?> in an XML stream (RFC 6120 §11.1)", ErrProtocol, errXMPPRestricted, v.Target)
		}
	case xml.Directive:
		return nil, fmt.Errorf("%w: %w: DTD or directive in an XML stream (RFC 6120 §11.1)", ErrProtocol, errXMPPRestricted)
	case xml.Comment:
		return nil, fmt.Errorf("%w: %w: comment in an XML stream (RFC 6120 §11.1)", ErrProtocol, errXMPPRestricted)
	case xml.CharData:
		if len(v) > x.maxText {
			return nil, fmt.Errorf("%w (XML text of %d bytes)", ErrLineTooLong, len(v))
		}
	case xml.StartElement:
		for _, a := range v.Attr {
			if len(a.Value) > x.maxText {
				return nil, fmt.Errorf("%w (XML attribute of %d bytes)", ErrLineTooLong, len(a.Value))
			}
		}
	}
	return t, nil
}

// header reads the peer's stream header.
func (x *xmppStream) header() (xml.StartElement, error) {
	for i := 0; i < xmppMaxTokens; i++ {
		t, err := x.token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch v := t.(type) {
		case xml.ProcInst:
		case xml.CharData:
			if !isXMLSpace(v) {
				return xml.StartElement{}, fmt.Errorf("%w: text before the stream header", ErrProtocol)
			}
		case xml.StartElement:
			if v.Name.Space != nsStreams || v.Name.Local != "stream" {
				return xml.StartElement{}, fmt.Errorf("%w: <%s> where the stream header <stream:stream> should be", ErrProtocol, xmlNameString(v.Name))
			}
			return v.Copy(), nil
		default:
			return xml.StartElement{}, fmt.Errorf("%w: unexpected %T before the stream header", ErrProtocol, t)
		}
	}
	return xml.StartElement{}, fmt.Errorf("%w: no stream header", ErrProtocol)
}

// xmlElem is one element read whole, with its children and text.
type xmlElem struct {
	xml.StartElement
	kids []*xmlElem
	text string
}

func (e *xmlElem) is(space, local string) bool {
	return e.Name.Space == space && e.Name.Local == local
}

// element reads the next top-level element of the stream (whitespace
// between elements is skipped); nil means the peer closed the stream.
func (x *xmppStream) element() (*xmlElem, error) {
	x.reset()
	for i := 0; i < xmppMaxTokens; i++ {
		t, err := x.token()
		if err != nil {
			return nil, err
		}
		switch v := t.(type) {
		case xml.CharData:
			if !isXMLSpace(v) {
				return nil, fmt.Errorf("%w: text at the stream level", ErrProtocol)
			}
		case xml.EndElement:
			// The decoder checked that it closes the stream.
			return nil, nil
		case xml.StartElement:
			return x.subtree(v)
		default:
			return nil, fmt.Errorf("%w: unexpected %T in the stream", ErrProtocol, t)
		}
	}
	return nil, fmt.Errorf("%w: more than %d whitespace keep-alives in a row", ErrProtocol, xmppMaxTokens)
}

func (x *xmppStream) subtree(start xml.StartElement) (*xmlElem, error) {
	root := &xmlElem{StartElement: start.Copy()}
	stack := []*xmlElem{root}
	for n := 1; len(stack) > 0; {
		t, err := x.token()
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch v := t.(type) {
		case xml.StartElement:
			if len(stack) >= xmppMaxDepth {
				return nil, fmt.Errorf("%w: XML nested deeper than %d elements", ErrProtocol, xmppMaxDepth)
			}
			if n++; n > xmppMaxElements {
				return nil, fmt.Errorf("%w: more than %d XML elements in <%s>", ErrProtocol, xmppMaxElements, xmlNameString(root.Name))
			}
			e := &xmlElem{StartElement: v.Copy()}
			top.kids = append(top.kids, e)
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(top.text)+len(v) > x.maxText {
				return nil, fmt.Errorf("%w (XML text of more than %d bytes)", ErrLineTooLong, x.maxText)
			}
			top.text += string(v)
		}
	}
	return root, nil
}

func isXMLSpace(b []byte) bool {
	return len(bytes.Trim(b, " \t\r\n")) == 0
}

func xmlNameString(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Local + " xmlns='" + n.Space + "'"
}

func xmlAttrValue(e xml.StartElement, local string) (string, bool) {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// xmlEscape escapes s for an attribute value or text in single quotes.
func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// xmppVersionOK reports whether a version attribute is 1.0 or later
// (absent means a pre-RFC 3920 stream without features, RFC 6120 §4.7.5).
func xmppVersionOK(e xml.StartElement) bool {
	v, ok := xmlAttrValue(e, "version")
	if !ok {
		return false
	}
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 1
}

// xmppStreamError describes a <stream:error>: its condition and text.
func xmppStreamError(e *xmlElem) string {
	cond, text := "", ""
	for _, k := range e.kids {
		if k.Name.Space != nsStreamErr {
			continue
		}
		if k.Name.Local == "text" {
			text = strings.TrimSpace(k.text)
		} else if cond == "" {
			cond = k.Name.Local
		}
	}
	if cond == "" {
		cond = "undefined-condition"
	}
	if text != "" {
		return fmt.Sprintf("stream error <%s> %q", cond, text)
	}
	return fmt.Sprintf("stream error <%s>", cond)
}

// saslMechName is RFC 4422's mechanism name syntax.
func saslMechName(s string) bool {
	return s != "" && len(s) <= 20 && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

// xmppFeatures turns <stream:features> into capabilities: "starttls",
// "starttls-required", "mechanisms PLAIN SCRAM-SHA-1" (Args("mechanisms")
// lists them) and the local name of every other feature ("bind", "sm",
// "dialback", ...).
func xmppFeatures(f *xmlElem) (caps Capabilities, offered bool) {
	seen := map[string]bool{}
	add := func(c string) {
		if !seen[c] {
			seen[c] = true
			caps = append(caps, c)
		}
	}
	for _, k := range f.kids {
		switch {
		case k.is(nsTLS, "starttls"):
			offered = true
			add("starttls")
			for _, r := range k.kids {
				if r.is(nsTLS, "required") {
					add("starttls-required")
				}
			}
		case k.is(nsSASL, "mechanisms"):
			entry := "mechanisms"
			for _, m := range k.kids {
				if name := strings.TrimSpace(m.text); m.is(nsSASL, "mechanism") && saslMechName(name) {
					entry += " " + name
				}
			}
			add(entry)
		default:
			add(k.Name.Local)
		}
	}
	return caps, offered
}

// xmppStream starts reading the server's stream; prime is the server's
// stream header when the stream is already open.
func (s *clientSession) xmppStream(prime string) *xmppStream {
	return newXMPPStream(s.r, prime, s.cfg.MaxPreTLSBytes, s.cfg.MaxLineLength)
}

// xmppFail turns a read error into the session's error, with what was read as evidence.
func (s *clientSession) xmppFail(x *xmppStream, err error) error {
	return s.fail(classifyIO(s.ctx, err), x.raw())
}

// xmppResume reads the server's header again from the prime, so that the
// decoder knows the stream's namespaces.
func (s *clientSession) xmppResume() (*xmppStream, error) {
	x := s.xmppStream(s.c.Greeting)
	if _, err := x.header(); err != nil {
		return nil, s.failf(ErrProtocol, "", "no open XML stream to resume: %v", err)
	}
	return x, nil
}

func xmppClient(ns string) *clientHalf {
	// open starts a stream and reads the server's header and features;
	// refusal is the condition a <stream:error> stands for.
	open := func(s *clientSession, refusal error) error {
		domain := s.cfg.Domain
		if domain == "" {
			domain = s.host
		}
		hdr := "<?xml version='1.0'?><stream:stream to='" + xmlEscape(domain) + "'"
		if ns == nsServer {
			hdr += " from='" + xmlEscape(s.cfg.LocalName) + "'"
		}
		hdr += " version='1.0' xmlns='" + ns + "' xmlns:stream='" + nsStreams + "'>"
		if err := s.sendRaw([]byte(hdr), hdr); err != nil {
			return err
		}
		x := s.xmppStream("")
		s.dl.Phase()
		h, err := x.header()
		if err != nil {
			return s.xmppFail(x, err)
		}
		s.record(false, x.raw())
		// The header is kept (whole: it is parsed again to resume the
		// stream for STARTTLS and for the goodbye).
		s.c.Greeting = string(bytes.TrimLeft(x.src.raw, " \t\r\n"))
		if v, _ := xmlAttrValue(h, "xmlns"); v != ns {
			return s.failf(ErrProtocol, x.raw(), "stream namespace %q, want %q", v, ns)
		}
		if !s.inTLS {
			s.phase = PhaseCaps
		}
		if !xmppVersionOK(h) {
			// A pre-1.0 stream (RFC 6120 §4.7.5) has no features: no STARTTLS.
			return s.failf(ErrNotOffered, x.raw(), "server stream has no version 1.0 (no stream features)")
		}
		s.dl.Phase()
		f, err := x.element()
		if err != nil {
			return s.xmppFail(x, err)
		}
		switch {
		case f == nil:
			return s.failf(ErrClosed, x.raw(), "server closed the stream")
		case f.is(nsStreams, "error"):
			s.record(false, x.raw())
			return s.failf(refusal, x.raw(), "%s", xmppStreamError(f))
		case !f.is(nsStreams, "features"):
			return s.failf(ErrProtocol, x.raw(), "<%s> where <stream:features> should be", xmlNameString(f.Name))
		}
		s.record(false, x.raw())
		s.caps, s.offered = xmppFeatures(f)
		return nil
	}
	return &clientHalf{
		greet: func(s *clientSession) error { return open(s, ErrRefused) },
		upgrade: func(s *clientSession) error {
			if err := s.sendRaw([]byte(xmppStartTLS), xmppStartTLS); err != nil {
				return err
			}
			x, err := s.xmppResume()
			if err != nil {
				return err
			}
			s.dl.Phase()
			e, err := x.element()
			if err != nil {
				return s.xmppFail(x, err)
			}
			if e == nil {
				return s.failf(ErrClosed, x.raw(), "server closed the stream in answer to STARTTLS")
			}
			s.record(false, x.raw())
			switch {
			case e.is(nsTLS, "proceed"):
				return nil
			case e.is(nsTLS, "failure"):
				return s.failf(ErrRefused, x.raw(), "server answered <failure/>")
			case e.is(nsStreams, "error"):
				return s.failf(ErrRefused, x.raw(), "%s", xmppStreamError(e))
			}
			return s.failf(ErrProtocol, x.raw(), "<%s> in answer to STARTTLS", xmlNameString(e.Name))
		},
		// RFC 6120 §5.4.3.3: both sides restart the stream inside TLS.
		requery: func(s *clientSession) error { return open(s, ErrProtocol) },
		quit: func(s *clientSession) error {
			if err := s.sendRaw([]byte(xmppClose), xmppClose); err != nil {
				return err
			}
			x, err := s.xmppResume()
			if err != nil {
				return err
			}
			for i := 0; i < 100; i++ {
				s.dl.Phase()
				e, err := x.element()
				if err != nil {
					return s.xmppFail(x, err)
				}
				if e == nil {
					return nil
				}
			}
			return s.failf(ErrProtocol, "", "server did not close its stream")
		},
	}
}

func xmppServer(ns string) *serverHalf {
	return &serverHalf{
		goAhead: func(s *serverSession) error { return s.sendRaw([]byte(xmppProceed), xmppProceed) },
		serve:   func(s *serverSession) (action, error) { return xmppServe(s, ns) },
	}
}

// xmppServe reads the client's stream header, answers with ours and the
// features, and waits for <starttls/>.
func xmppServe(s *serverSession, ns string) (action, error) {
	x := newXMPPStream(s.r, "", s.cfg.MaxPreTLSBytes, s.cfg.MaxLineLength)
	opened := false
	ourHeader := func(to string) string {
		h := "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + nsStreams +
			"' id='" + rand.Text() + "' from='" + xmlEscape(s.cfg.Hostname) + "'"
		if to != "" {
			h += " to='" + xmlEscape(to) + "'"
		}
		return h + " version='1.0'>"
	}
	// streamError ends the stream with a condition (RFC 6120 §4.9); the
	// header comes first if it was not sent yet.
	streamError := func(cond, text string, cause error) (action, error) {
		var b strings.Builder
		if !opened {
			b.WriteString(ourHeader(""))
		}
		b.WriteString("<stream:error><" + cond + " xmlns='" + nsStreamErr + "'/>")
		if text != "" {
			b.WriteString("<text xmlns='" + nsStreamErr + "'>" + xmlEscape(text) + "</text>")
		}
		b.WriteString("</stream:error>" + xmppClose)
		_ = s.sendRaw([]byte(b.String()), "<stream:error><"+cond+"/></stream:error>")
		return 0, cause
	}
	readErr := func(err error) (action, error) {
		e := s.fail(classifyIO(s.ctx, err), x.raw())
		switch {
		case errors.Is(err, errXMPPRestricted):
			return streamError("restricted-xml", "", e)
		case errors.Is(err, errXMPPNotWellFormed):
			return streamError("not-well-formed", "", e)
		case errors.Is(err, ErrProtocol):
			return streamError("bad-format", "", e)
		case errors.Is(err, ErrLineTooLong), errors.Is(err, ErrTooMuchData):
			return streamError("policy-violation", "too much data before TLS", e)
		}
		return 0, e
	}

	s.phase = PhaseGreeting
	s.dl.Phase()
	h, err := x.header()
	if err != nil {
		return readErr(err)
	}
	s.record(false, x.raw())
	to, _ := xmlAttrValue(h, "to")
	from, _ := xmlAttrValue(h, "from")
	if v, _ := xmlAttrValue(h, "xmlns"); v != ns {
		return streamError("invalid-namespace", "", s.fail(fmt.Errorf("%w: stream namespace %q, want %q", ErrProtocol, v, ns), x.raw()))
	}
	if !xmppVersionOK(h) {
		return streamError("unsupported-version", "version 1.0 is required for STARTTLS",
			s.fail(fmt.Errorf("%w: client stream without version 1.0", ErrProtocol), x.raw()))
	}
	if to != "" && !strings.EqualFold(to, s.cfg.Hostname) {
		return streamError("host-unknown", "", s.fail(fmt.Errorf("%w: stream to %q, this is %q", ErrProtocol, to, s.cfg.Hostname), x.raw()))
	}
	s.c.ClientName = from

	features := "<stream:features><starttls xmlns='" + nsTLS + "'>"
	if s.cfg.Policy == Required {
		features += "<required/>"
	}
	features += "</starttls>"
	// advertised() has already dropped AUTH/SASL entries under Required.
	caps := Capabilities(s.cfg.advertised())
	var mechs []string
	for _, kw := range []string{"AUTH", "SASL"} {
		args, _ := caps.Args(kw)
		for _, m := range args {
			if m = strings.ToUpper(m); saslMechName(m) {
				mechs = append(mechs, "<mechanism>"+m+"</mechanism>")
			}
		}
	}
	if len(mechs) > 0 {
		features += "<mechanisms xmlns='" + nsSASL + "'>" + strings.Join(mechs, "") + "</mechanisms>"
	}
	features += "</stream:features>"
	hdr := ourHeader(from)
	s.record(true, hdr)
	s.record(true, features)
	if err := s.sendRaw([]byte(hdr+features), ""); err != nil {
		return 0, err
	}
	opened = true

	// One element decides: <starttls/>, the end of the stream, or (RFC
	// 6120 §5.3.1) anything else, which under Required ends the stream.
	s.phase = PhaseStartTLS
	s.dl.Phase()
	e, err := x.element()
	if err != nil {
		return readErr(err)
	}
	if e == nil {
		_ = s.sendRaw([]byte(xmppClose), xmppClose)
		return actQuit, nil
	}
	s.record(false, x.raw())
	switch {
	case e.is(nsTLS, "starttls"):
		xmppSkipTrailingSpace(s.r)
		return actStartTLS, nil
	case e.is(nsStreams, "error"):
		return 0, s.fail(fmt.Errorf("%w: client sent %s", ErrClosed, xmppStreamError(e)), x.raw())
	case s.cfg.Policy == Optional:
		// The application takes the plaintext stream, starting with this stanza.
		s.c.pending = bytes.TrimLeft(append([]byte(nil), x.src.raw...), " \t\r\n")
		return actHandoff, nil
	}
	return streamError("policy-violation", "STARTTLS is required",
		s.fail(fmt.Errorf("%w: <%s> before STARTTLS (TLS required)", ErrProtocol, xmlNameString(e.Name)), x.raw()))
}

// xmppSkipTrailingSpace drops a line ending that arrived with <starttls/>
// (clients that end every write with a newline, as gnutls-cli does its
// stream header): XML whitespace is no stanza and cannot be executed. Only
// whitespace, and only when it is all that is buffered: anything else stays
// for the injection check.
func xmppSkipTrailingSpace(r *wire.Reader) {
	n := r.Buffered()
	if n == 0 || n > 4 || !isXMLSpace(r.Pending()) {
		return
	}
	for i := 0; i < n; i++ {
		_, _ = r.ReadByte()
	}
}
