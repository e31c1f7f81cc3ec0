package xmpp

import (
	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/wire"
)

// XMPP (RFC 6120 §5): client-to-server ("xmpp", jabber:client) and
// server-to-server ("xmpp-server", jabber:server) streams, and their
// implicit-TLS ports (XEP-0368). The dialogue is XML, read token by token
// with encoding/xml from the bounded wire reader, one byte at a time, so
// that nothing past the element being decoded is consumed and the
// "nothing crosses the upgrade" check sees every byte the peer pipelined.

// clientStream starts reading the server's stream within the pre-TLS
// byte budget; prime is the server's stream header when the stream is
// already open.
func clientStream(s dialog.Client, prime string) *Stream {
	return NewStream(s.Reader(), prime, s.Config().MaxPreTLSBytes, s.Config().MaxLineLength)
}

// clientFail turns a read error into the session's error, with what was read as evidence.
func clientFail(s dialog.Client, x *Stream, err error) error {
	return s.FailIO(err, x.Raw())
}

// clientResume reads the server's header again from the prime, so that the
// decoder knows the stream's namespaces.
func clientResume(s dialog.Client) (*Stream, error) {
	x := clientStream(s, s.Greeting())
	if _, err := x.Header(); err != nil {
		return nil, s.Failf(wire.ErrProtocol, "", "no open XML stream to resume: %v", err)
	}
	return x, nil
}

// clientHalf is XMPP's client side of the upgrade for stream namespace ns, registered by init.
func clientHalf(ns string) *dialog.ClientHalf {
	// open starts a stream and reads the server's header and features;
	// refusal is the condition a <stream:error> stands for.
	open := func(s dialog.Client, refusal error) error {
		domain := s.Config().Domain
		if domain == "" {
			domain = s.Config().Host
		}
		hdr := "<?xml version='1.0'?><stream:stream to='" + Escape(domain) + "'"
		if ns == NSServer {
			hdr += " from='" + Escape(s.Config().LocalName) + "'"
		}
		hdr += " version='1.0' xmlns='" + ns + "' xmlns:stream='" + NSStreams + "'>"
		if err := s.SendRaw([]byte(hdr), hdr); err != nil {
			return err
		}
		x := clientStream(s, "")
		s.ResetDeadline()
		h, err := x.Header()
		if err != nil {
			return clientFail(s, x, err)
		}
		s.Received(x.Raw())
		// The header is kept (whole: it is parsed again to resume the
		// stream for STARTTLS and for the goodbye).
		s.SetGreeting(string(x.Bytes()))
		if v, _ := AttrValue(h, "xmlns"); v != ns {
			return s.Failf(wire.ErrProtocol, x.Raw(), "stream namespace %q, want %q", v, ns)
		}
		if !s.InTLS() {
			s.SetPhase(dialog.PhaseCaps)
		}
		if !VersionOK(h) {
			// A pre-1.0 stream (RFC 6120 §4.7.5) has no features: no STARTTLS.
			return s.Failf(dialog.ErrNotOffered, x.Raw(), "server stream has no version 1.0 (no stream features)")
		}
		s.ResetDeadline()
		f, err := x.Element()
		if err != nil {
			return clientFail(s, x, err)
		}
		switch {
		case f == nil:
			return s.Failf(dialog.ErrClosed, x.Raw(), "server closed the stream")
		case f.Is(NSStreams, "error"):
			s.Received(x.Raw())
			return s.Failf(refusal, x.Raw(), "%s", StreamError(f))
		case !f.Is(NSStreams, "features"):
			return s.Failf(wire.ErrProtocol, x.Raw(), "<%s> where <stream:features> should be", NameString(f.Name))
		}
		s.Received(x.Raw())
		caps, offered := Features(f)
		s.SetCaps(caps, offered)
		return nil
	}
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error { return open(s, dialog.ErrRefused) },
		Upgrade: func(s dialog.Client) error {
			if err := s.SendRaw([]byte(StartTLS), StartTLS); err != nil {
				return err
			}
			x, err := clientResume(s)
			if err != nil {
				return err
			}
			s.ResetDeadline()
			e, err := x.Element()
			if err != nil {
				return clientFail(s, x, err)
			}
			if e == nil {
				return s.Failf(dialog.ErrClosed, x.Raw(), "server closed the stream in answer to STARTTLS")
			}
			s.Received(x.Raw())
			switch {
			case e.Is(NSTLS, "proceed"):
				return nil
			case e.Is(NSTLS, "failure"):
				return s.Failf(dialog.ErrRefused, x.Raw(), "server answered <failure/>")
			case e.Is(NSStreams, "error"):
				return s.Failf(dialog.ErrRefused, x.Raw(), "%s", StreamError(e))
			}
			return s.Failf(wire.ErrProtocol, x.Raw(), "<%s> in answer to STARTTLS", NameString(e.Name))
		},
		// RFC 6120 §5.4.3.3: both sides restart the stream inside TLS.
		Requery: func(s dialog.Client) error { return open(s, wire.ErrProtocol) },
		Quit: func(s dialog.Client) error {
			if err := s.SendRaw([]byte(Close), Close); err != nil {
				return err
			}
			x, err := clientResume(s)
			if err != nil {
				return err
			}
			for i := 0; i < 100; i++ {
				s.ResetDeadline()
				e, err := x.Element()
				if err != nil {
					return clientFail(s, x, err)
				}
				if e == nil {
					return nil
				}
			}
			return s.Failf(wire.ErrProtocol, "", "server did not close its stream")
		},
	}
}
