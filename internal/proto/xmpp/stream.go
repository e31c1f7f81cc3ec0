package xmpp

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"

	"github.com/starttls-go/starttls/internal/wire"
)

// source feeds encoding/xml one byte at a time from the wire reader
// (an io.ByteReader, so the decoder adds no buffer of its own). prime is
// replayed first: the stream header already read, which restores the
// namespace context for a decoder started in the middle of a stream.
type source struct {
	r       *wire.Reader
	prime   []byte
	started bool // a '<' came from the wire (a stream starts with markup)
	n       int  // bytes taken from the wire
	max     int  // bound on n for this exchange
	err     error
	raw     []byte // bytes taken from the wire since the last reset (evidence)
}

func (x *source) ReadByte() (byte, error) {
	if len(x.prime) > 0 {
		b := x.prime[0]
		x.prime = x.prime[1:]
		return b, nil
	}
	if x.err != nil {
		return 0, x.err
	}
	if x.n >= x.max {
		x.err = fmt.Errorf("%w (more than %d bytes of XML in one exchange)", wire.ErrTooMuchData, x.max)
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
			x.err = fmt.Errorf("%w: %w: not an XML stream (starts with %q)", wire.ErrProtocol, ErrNotWellFormed, x.raw)
			return 0, x.err
		}
	}
	return b, nil
}

// Read exists because xml.NewDecoder takes an io.Reader; the decoder uses
// ReadByte.
func (x *source) Read(p []byte) (int, error) {
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

// Stream reads one side of an XML stream with limits.
type Stream struct {
	src     *source
	dec     *xml.Decoder
	maxText int
	started bool
}

// NewStream reads a stream from r: at most maxBytes bytes in one exchange
// (between resets) and maxText bytes of text or of one attribute. prime
// is the stream header already read, if any.
func NewStream(r *wire.Reader, prime string, maxBytes, maxText int) *Stream {
	src := &source{r: r, prime: []byte(prime), max: maxBytes, started: prime != ""}
	dec := xml.NewDecoder(src)
	dec.Strict = true
	return &Stream{src: src, dec: dec, maxText: maxText}
}

// Raw returns the bytes read since the last reset, without leading
// whitespace: the evidence for errors and the transcript.
func (x *Stream) Raw() string {
	b := x.Bytes()
	if len(b) > maxEvidence {
		b = b[:maxEvidence]
	}
	return string(b)
}

// maxEvidence bounds Raw as the root package bounds the peer's bytes it
// quotes in errors.
const maxEvidence = 200

// Bytes returns the bytes read since the last reset without leading
// whitespace. They stay valid until the next read.
func (x *Stream) Bytes() []byte { return bytes.TrimLeft(x.src.raw, " \t\r\n") }

// Reset forgets the bytes kept as evidence, before a new exchange.
func (x *Stream) Reset() { x.src.raw = x.src.raw[:0] }

// Token returns the next token, refusing what RFC 6120 §11.1 forbids in a
// stream (DTDs, comments, processing instructions) and oversized text.
// Errors from the wire come back as they are (timeouts, closed, budget);
// malformed XML is wire.ErrProtocol.
func (x *Stream) Token() (xml.Token, error) {
	t, err := x.dec.Token()
	if err != nil {
		if x.src.err != nil {
			return nil, x.src.err
		}
		if err == io.EOF {
			return nil, io.EOF
		}
		return nil, fmt.Errorf("%w: %w: malformed XML: %v", wire.ErrProtocol, ErrNotWellFormed, err)
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
			return nil, fmt.Errorf("%w: %w: processing instruction <?%s?> in an XML stream (RFC 6120 §11.1)", wire.ErrProtocol, ErrRestricted, v.Target)
		}
	case xml.Directive:
		return nil, fmt.Errorf("%w: %w: DTD or directive in an XML stream (RFC 6120 §11.1)", wire.ErrProtocol, ErrRestricted)
	case xml.Comment:
		return nil, fmt.Errorf("%w: %w: comment in an XML stream (RFC 6120 §11.1)", wire.ErrProtocol, ErrRestricted)
	case xml.CharData:
		if len(v) > x.maxText {
			return nil, fmt.Errorf("%w (XML text of %d bytes)", wire.ErrLineTooLong, len(v))
		}
	case xml.StartElement:
		for _, a := range v.Attr {
			if len(a.Value) > x.maxText {
				return nil, fmt.Errorf("%w (XML attribute of %d bytes)", wire.ErrLineTooLong, len(a.Value))
			}
		}
	}
	return t, nil
}

// Header reads the peer's stream header.
func (x *Stream) Header() (xml.StartElement, error) {
	for i := 0; i < maxTokens; i++ {
		t, err := x.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch v := t.(type) {
		case xml.ProcInst:
		case xml.CharData:
			if !IsSpace(v) {
				return xml.StartElement{}, fmt.Errorf("%w: text before the stream header", wire.ErrProtocol)
			}
		case xml.StartElement:
			if v.Name.Space != NSStreams || v.Name.Local != "stream" {
				return xml.StartElement{}, fmt.Errorf("%w: <%s> where the stream header <stream:stream> should be", wire.ErrProtocol, NameString(v.Name))
			}
			return v.Copy(), nil
		default:
			return xml.StartElement{}, fmt.Errorf("%w: unexpected %T before the stream header", wire.ErrProtocol, t)
		}
	}
	return xml.StartElement{}, fmt.Errorf("%w: no stream header", wire.ErrProtocol)
}

// Elem is one element read whole, with its children and text.
type Elem struct {
	xml.StartElement
	Kids []*Elem
	Text string
}

// Is reports whether e is the element local in namespace space.
func (e *Elem) Is(space, local string) bool {
	return e.Name.Space == space && e.Name.Local == local
}

// Element reads the next top-level element of the stream (whitespace
// between elements is skipped); nil means the peer closed the stream.
func (x *Stream) Element() (*Elem, error) {
	x.Reset()
	for i := 0; i < maxTokens; i++ {
		t, err := x.Token()
		if err != nil {
			return nil, err
		}
		switch v := t.(type) {
		case xml.CharData:
			if !IsSpace(v) {
				return nil, fmt.Errorf("%w: text at the stream level", wire.ErrProtocol)
			}
		case xml.EndElement:
			// The decoder checked that it closes the stream.
			return nil, nil
		case xml.StartElement:
			return x.subtree(v)
		default:
			return nil, fmt.Errorf("%w: unexpected %T in the stream", wire.ErrProtocol, t)
		}
	}
	return nil, fmt.Errorf("%w: more than %d whitespace keep-alives in a row", wire.ErrProtocol, maxTokens)
}

func (x *Stream) subtree(start xml.StartElement) (*Elem, error) {
	root := &Elem{StartElement: start.Copy()}
	stack := []*Elem{root}
	for n := 1; len(stack) > 0; {
		t, err := x.Token()
		if err != nil {
			return nil, err
		}
		top := stack[len(stack)-1]
		switch v := t.(type) {
		case xml.StartElement:
			if len(stack) >= maxDepth {
				return nil, fmt.Errorf("%w: XML nested deeper than %d elements", wire.ErrProtocol, maxDepth)
			}
			if n++; n > maxElements {
				return nil, fmt.Errorf("%w: more than %d XML elements in <%s>", wire.ErrProtocol, maxElements, NameString(root.Name))
			}
			e := &Elem{StartElement: v.Copy()}
			top.Kids = append(top.Kids, e)
			stack = append(stack, e)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(top.Text)+len(v) > x.maxText {
				return nil, fmt.Errorf("%w (XML text of more than %d bytes)", wire.ErrLineTooLong, x.maxText)
			}
			top.Text += string(v)
		}
	}
	return root, nil
}
