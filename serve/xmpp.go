package serve

import (
	"context"
	"encoding/xml"
	"io"
	"strings"
	"time"
)

// xmppApp answers the stream a client restarts inside TLS (RFC 6120
// §5.4.3.3) with post-TLS features (SASL PLAIN, resource binding), answers
// stanzas with service-unavailable and closes the stream when the client
// does. Enough for a client to see it is talking XMPP inside TLS.
func xmppApp(ctx context.Context, s *session) {
	// One byte at a time through the session's buffer, bounded in total.
	dec := xml.NewDecoder(io.LimitReader(s.br, 1<<20))
	ns, streams := "jabber:client", 0
	for i := 0; i < 10000 && ctx.Err() == nil; i++ {
		_ = s.c.SetReadDeadline(time.Now().Add(s.o.IdleTimeout))
		tok, err := dec.Token()
		if err != nil {
			return
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case t.Name.Local == "stream" && streams < 3:
				streams++
				for _, a := range t.Attr {
					if a.Name.Local == "xmlns" && a.Name.Space == "" {
						ns = a.Value
					}
				}
				if !s.xmppWrite("<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='http://etherx.jabber.org/streams' id='starttls-serve' from='" +
					s.o.Hostname + "' version='1.0'><stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms>" +
					"<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features>") {
					return
				}
			case t.Name.Local == "starttls":
				// TLS is already on: a second STARTTLS fails and ends the stream (RFC 6120 §5.4.2.2).
				s.xmppWrite("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/></stream:stream>")
				return
			case t.Name.Local == "iq" || t.Name.Local == "message" || t.Name.Local == "presence" || t.Name.Local == "auth":
				id := ""
				for _, a := range t.Attr {
					if a.Name.Local == "id" {
						id = a.Value
					}
				}
				if err := dec.Skip(); err != nil {
					return
				}
				if t.Name.Local == "auth" {
					if !s.xmppWrite("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>") {
						return
					}
					continue
				}
				if !s.xmppWrite("<" + t.Name.Local + " type='error' id='" + xmlEscape(id) + "'><error type='cancel'>" +
					"<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></" + t.Name.Local + ">") {
					return
				}
			default:
				// Anything else at stream level ends the stream.
				s.xmppWrite("<stream:error><unsupported-stanza-type xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error></stream:stream>")
				return
			}
		case xml.EndElement:
			if t.Name.Local == "stream" {
				s.xmppWrite("</stream:stream>")
				return
			}
		}
	}
}

func (s *session) xmppWrite(x string) bool {
	_ = s.c.SetWriteDeadline(time.Now().Add(s.o.IdleTimeout))
	_, err := io.WriteString(s.c, x)
	return err == nil
}

func xmlEscape(v string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(v))
	return strings.ReplaceAll(b.String(), "'", "&apos;")
}
