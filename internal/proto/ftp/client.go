package ftp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// FTP (RFC 959, FEAT RFC 2389, AUTH TLS RFC 4217) and implicit ftps.

// clientReadReply reads one reply: "123 text", or "123-text" ... "123 text"
// with free-form lines between (RFC 959 §4.2). The lines after the first
// are returned without their code.
func clientReadReply(s dialog.Client) (smtp.Reply, error) {
	var r smtp.Reply
	line, err := s.ReadLine()
	if err != nil {
		return r, err
	}
	code, more, text, err := smtp.ParseCodeLine(line, 100)
	if err != nil {
		return r, s.Fail(err, line)
	}
	r.Code, r.Lines = code, []string{text}
	end := line[:3] + " "
	for i := 0; more && i < dialog.MaxReplyLines; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return r, err
		}
		if strings.HasPrefix(line, end) || line == end[:3] {
			r.Lines = append(r.Lines, strings.TrimPrefix(line, end))
			return r, nil
		}
		r.Lines = append(r.Lines, strings.TrimPrefix(line, line[:min(len(line), 3)]+"-"))
	}
	if more {
		return r, s.Failf(dialog.ErrProtocol, "", "reply longer than %d lines", dialog.MaxReplyLines)
	}
	return r, nil
}

// clientFeatures reads FEAT (RFC 2389): "211-Features:", " AUTH TLS", ..., "211 End".
func clientFeatures(s dialog.Client) error {
	if err := s.Send("FEAT"); err != nil {
		return err
	}
	r, err := clientReadReply(s)
	if err != nil {
		return err
	}
	if r.Code != 211 {
		// FEAT is optional; without it AUTH TLS can only be tried.
		s.SetCaps(nil, true)
		return nil
	}
	var caps dialog.Capabilities
	for _, l := range r.Lines[1 : len(r.Lines)-1] {
		if f := strings.TrimSpace(l); f != "" {
			caps = append(caps, f)
		}
	}
	auth, _ := caps.Args("AUTH")
	offered := false
	for _, a := range auth {
		for _, m := range strings.Split(a, ";") {
			if strings.EqualFold(m, "TLS") {
				offered = true
			}
		}
	}
	s.SetCaps(caps, offered)
	return nil
}

// clientHalf is FTP's client side of the upgrade, registered by init.
func clientHalf() *dialog.ClientHalf {
	return &dialog.ClientHalf{
		Greet: func(s dialog.Client) error {
			r, err := clientReadReply(s)
			// "120 ready in n minutes" may precede the greeting.
			for i := 0; err == nil && r.Code < 200 && i < 3; i++ {
				r, err = clientReadReply(s)
			}
			if err := smtp.ClientGreet220(s)(r, err); err != nil {
				return err
			}
			return clientFeatures(s)
		},
		Upgrade: smtp.ClientCodeUpgrade("AUTH TLS", 234, clientReadReply),
		// Inside TLS: protect the data channel too (RFC 4217 §8-9), then
		// list the features again.
		Requery: func(s dialog.Client) error {
			for _, cmd := range []string{"PBSZ 0", "PROT P"} {
				if err := s.Send(cmd); err != nil {
					return err
				}
				r, err := clientReadReply(s)
				if err != nil {
					return err
				}
				if r.Code != 200 {
					return s.Failf(dialog.ErrProtocol, r.String(), "%s refused", cmd)
				}
			}
			return clientFeatures(s)
		},
		Quit: func(s dialog.Client) error {
			if err := s.Send("QUIT"); err != nil {
				return err
			}
			_, err := clientReadReply(s)
			return err
		},
	}
}
