// Package xmpp is the codec of XMPP streams (RFC 6120) as far as the
// STARTTLS dialogue needs it: a bounded XML stream reader that consumes no
// byte beyond the element it decodes, stream headers, stream errors and
// stream features.
//
// It is internal: the root package's XMPP dialogue uses it, and it may
// change with it.
package xmpp

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Namespaces of RFC 6120.
const (
	NSClient    = "jabber:client"
	NSServer    = "jabber:server"
	NSStreams   = "http://etherx.jabber.org/streams"
	NSTLS       = "urn:ietf:params:xml:ns:xmpp-tls"
	NSSASL      = "urn:ietf:params:xml:ns:xmpp-sasl"
	NSStreamErr = "urn:ietf:params:xml:ns:xmpp-streams"
)

// What a STARTTLS dialogue sends, and the bounds of the stream reader.
const (
	StartTLS = "<starttls xmlns='" + NSTLS + "'/>"
	Proceed  = "<proceed xmlns='" + NSTLS + "'/>"
	Close    = "</stream:stream>"

	// maxDepth bounds element nesting below the stream (features need 3).
	maxDepth = 16
	// maxElements bounds the elements in one top-level element.
	maxElements = 1000
	// maxTokens bounds the tokens read while waiting for one thing
	// (whitespace keep-alives between elements included).
	maxTokens = 10000
)

// Kinds of malformed XML, for the stream error a server answers with.
var (
	ErrNotWellFormed = errors.New("not-well-formed")
	ErrRestricted    = errors.New("restricted-xml")
)

// IsSpace reports whether b is XML white space only (keep-alives).
func IsSpace(b []byte) bool {
	return len(bytes.Trim(b, " \t\r\n")) == 0
}

// NameString writes an element name as it reads in a stream.
func NameString(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Local + " xmlns='" + n.Space + "'"
}

// AttrValue returns the value of e's attribute local, which has no namespace.
func AttrValue(e xml.StartElement, local string) (string, bool) {
	for _, a := range e.Attr {
		if a.Name.Space == "" && a.Name.Local == local {
			return a.Value, true
		}
	}
	return "", false
}

// Escape escapes s for an attribute value or text in single quotes.
func Escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// VersionOK reports whether a version attribute is 1.0 or later
// (absent means a pre-RFC 3920 stream without features, RFC 6120 §4.7.5).
func VersionOK(e xml.StartElement) bool {
	v, ok := AttrValue(e, "version")
	if !ok {
		return false
	}
	major, _, _ := strings.Cut(v, ".")
	n, err := strconv.Atoi(major)
	return err == nil && n >= 1
}

// StreamError describes a <stream:error>: its condition and text.
func StreamError(e *Elem) string {
	cond, text := "", ""
	for _, k := range e.Kids {
		if k.Name.Space != NSStreamErr {
			continue
		}
		if k.Name.Local == "text" {
			text = strings.TrimSpace(k.Text)
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

// SASLMechName reports whether s has RFC 4422's mechanism name syntax.
func SASLMechName(s string) bool {
	return s != "" && len(s) <= 20 && strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_") == ""
}

// Features turns <stream:features> into capabilities: "starttls",
// "starttls-required", "mechanisms PLAIN SCRAM-SHA-1" (Args("mechanisms")
// lists them) and the local name of every other feature ("bind", "sm",
// "dialback", ...).
func Features(f *Elem) (caps []string, offered bool) {
	seen := map[string]bool{}
	add := func(c string) {
		if !seen[c] {
			seen[c] = true
			caps = append(caps, c)
		}
	}
	for _, k := range f.Kids {
		switch {
		case k.Is(NSTLS, "starttls"):
			offered = true
			add("starttls")
			for _, r := range k.Kids {
				if r.Is(NSTLS, "required") {
					add("starttls-required")
				}
			}
		case k.Is(NSSASL, "mechanisms"):
			entry := "mechanisms"
			for _, m := range k.Kids {
				if name := strings.TrimSpace(m.Text); m.Is(NSSASL, "mechanism") && SASLMechName(name) {
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
