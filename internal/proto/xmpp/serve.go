package xmpp

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// serveApp answers the stream a client restarts inside TLS (RFC 6120
// §5.4.3.3): SASL PLAIN against serve's users, the stream restart after
// it, resource binding and the legacy session; messages are stored in
// MailDir, other requests get service-unavailable. Enough for a real
// client to log in and send a message inside TLS, nothing more.
func serveApp(ctx context.Context, s registry.ServeConn) {
	// One byte at a time through the session's buffer, bounded in total.
	c := s.Conn()
	dec := xml.NewDecoder(io.LimitReader(c, 1<<20))
	ns, streams, user, authed := "jabber:client", 0, "", false
	for i := 0; i < 10000 && ctx.Err() == nil; i++ {
		_ = c.SetReadDeadline(time.Now().Add(s.IdleTimeout()))
		tok, err := dec.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if t.Name.Local == "stream" && streams < 3 {
				streams++
				for _, a := range t.Attr {
					if a.Name.Local == "xmlns" && a.Name.Space == "" {
						ns = a.Value
					}
				}
				features := "<mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>"
				if authed {
					features = "<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/><session xmlns='urn:ietf:params:xml:ns:xmpp-session'><optional/></session>"
				}
				if !serveWrite(s, "<?xml version='1.0'?><stream:stream xmlns='"+ns+"' xmlns:stream='http://etherx.jabber.org/streams' id='starttls-serve' from='"+
					s.Hostname()+"' version='1.0'><stream:features>"+features+"</stream:features>") {
					return
				}
				continue
			}
			var st serveElement
			if err := dec.DecodeElement(&st, &t); err != nil {
				return
			}
			reply, end := serveAnswer(s, &st, &user, &authed)
			if reply != "" && !serveWrite(s, reply) || end {
				return
			}
		case xml.EndElement:
			if t.Name.Local == "stream" {
				serveWrite(s, "</stream:stream>")
				return
			}
		}
	}
}

// serveElement is a top-level element inside the stream, with the children
// this server understands.
type serveElement struct {
	XMLName   xml.Name
	ID        string    `xml:"id,attr"`
	Type      string    `xml:"type,attr"`
	To        string    `xml:"to,attr"`
	Mechanism string    `xml:"mechanism,attr"`
	Text      string    `xml:",chardata"`
	Body      string    `xml:"body"`
	Bind      *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-bind bind"`
	Session   *struct{} `xml:"urn:ietf:params:xml:ns:xmpp-session session"`
}

// serveAnswer is the reply to one element; end says the stream is over.
func serveAnswer(s registry.ServeConn, st *serveElement, user *string, authed *bool) (reply string, end bool) {
	id := Escape(st.ID)
	switch name := st.XMLName.Local; {
	case name == "starttls":
		// TLS is already on: a second STARTTLS fails and ends the stream (RFC 6120 §5.4.2.2).
		return "<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>", true
	case name == "auth" && !*authed:
		u, p, ok := registry.PlainCredentials(st.Text)
		u, _, _ = strings.Cut(u, "@")
		if !strings.EqualFold(st.Mechanism, "PLAIN") || !ok || !s.CheckUser(u, p) {
			return "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>", false
		}
		*user, *authed = u, true
		return "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", false
	case !*authed && (name == "iq" || name == "message" || name == "presence"):
		// Stanzas before authentication end the stream (RFC 6120 §6.4.1).
		return "<stream:error><not-authorized xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>", true
	case name == "iq" && st.Type == "set" && st.Bind != nil:
		return "<iq type='result' id='" + id + "'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>" +
			Escape(*user+"@"+s.Hostname()+"/starttls-serve") + "</jid></bind></iq>", false
	case name == "iq" && st.Type == "set" && st.Session != nil:
		return "<iq type='result' id='" + id + "'/>", false
	case name == "iq" && (st.Type == "get" || st.Type == "set"):
		return "<iq type='error' id='" + id + "'><error type='cancel'>" +
			"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>", false
	case name == "message":
		if st.Body != "" {
			if _, err := s.Store(".xmpp", fmt.Sprintf("X-XMPP-From: %s\r\nX-XMPP-To: %s\r\n\r\n%s\r\n", *user, st.To, st.Body)); err != nil {
				return "<message type='error' id='" + id + "'><error type='wait'>" +
					"<resource-constraint xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>", false
			}
		}
		return "", false
	case name == "iq" || name == "presence":
		return "", false // results, errors and presence need no answer
	}
	// Anything else at stream level ends the stream.
	return "<stream:error><unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>", true
}

// serveWrite writes x with serve's idle deadline.
func serveWrite(s registry.ServeConn, x string) bool {
	c := s.Conn()
	_ = c.SetWriteDeadline(time.Now().Add(s.IdleTimeout()))
	_, err := io.WriteString(c, x)
	return err == nil
}
