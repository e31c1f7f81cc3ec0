package starttls

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// FTP (RFC 959, FEAT RFC 2389, AUTH TLS RFC 4217) and implicit ftps.

// readFTPReply reads one reply: "123 text", or "123-text" ... "123 text"
// with free-form lines between (RFC 959 §4.2). The lines after the first
// are returned without their code.
func (s *clientSession) readFTPReply() (smtp.Reply, error) {
	var r smtp.Reply
	line, err := s.readLine()
	if err != nil {
		return r, err
	}
	code, more, text, err := smtp.ParseCodeLine(line, 100)
	if err != nil {
		return r, s.fail(err, line)
	}
	r.Code, r.Lines = code, []string{text}
	end := line[:3] + " "
	for i := 0; more && i < maxReplyLines; i++ {
		line, err := s.readLine()
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
		return r, s.failf(ErrProtocol, "", "reply longer than %d lines", maxReplyLines)
	}
	return r, nil
}

// ftpFeatures reads FEAT (RFC 2389): "211-Features:", " AUTH TLS", ..., "211 End".
func ftpFeatures(s *clientSession) error {
	if err := s.send("FEAT"); err != nil {
		return err
	}
	r, err := s.readFTPReply()
	if err != nil {
		return err
	}
	if r.Code != 211 {
		// FEAT is optional; without it AUTH TLS can only be tried.
		s.caps = nil
		s.offered = true
		return nil
	}
	var caps Capabilities
	for _, l := range r.Lines[1 : len(r.Lines)-1] {
		if f := strings.TrimSpace(l); f != "" {
			caps = append(caps, f)
		}
	}
	s.caps = caps
	auth, _ := caps.Args("AUTH")
	s.offered = false
	for _, a := range auth {
		for _, m := range strings.Split(a, ";") {
			if strings.EqualFold(m, "TLS") {
				s.offered = true
			}
		}
	}
	return nil
}

func ftpClient() *clientHalf {
	return &clientHalf{
		greet: func(s *clientSession) error {
			r, err := s.readFTPReply()
			// "120 ready in n minutes" may precede the greeting.
			for i := 0; err == nil && r.Code < 200 && i < 3; i++ {
				r, err = s.readFTPReply()
			}
			if err := s.greet220(r, err); err != nil {
				return err
			}
			return ftpFeatures(s)
		},
		upgrade: codeUpgrade("AUTH TLS", 234, (*clientSession).readFTPReply),
		// Inside TLS: protect the data channel too (RFC 4217 §8-9), then
		// list the features again.
		requery: func(s *clientSession) error {
			for _, cmd := range []string{"PBSZ 0", "PROT P"} {
				if err := s.send(cmd); err != nil {
					return err
				}
				r, err := s.readFTPReply()
				if err != nil {
					return err
				}
				if r.Code != 200 {
					return s.failf(ErrProtocol, r.String(), "%s refused", cmd)
				}
			}
			return ftpFeatures(s)
		},
		quit: func(s *clientSession) error {
			if err := s.send("QUIT"); err != nil {
				return err
			}
			_, err := s.readFTPReply()
			return err
		},
	}
}

func ftpServer() *serverHalf {
	return &serverHalf{
		greet: func(s *serverSession) error {
			return s.send(fmt.Sprintf("220 %s FTP ready; AUTH TLS available", s.cfg.Hostname))
		},
		goAhead: func(s *serverSession) error { return s.send("234 Proceed with TLS negotiation") },
		command: func(s *serverSession, line string) (action, error) {
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "FEAT":
				lines := []string{"211-Features:", " AUTH TLS", " PBSZ", " PROT"}
				for _, c := range s.cfg.advertised() {
					lines = append(lines, " "+c)
				}
				return actContinue, s.send(append(lines, "211 End")...)
			case "AUTH":
				switch strings.ToUpper(strings.TrimSpace(arg)) {
				case "TLS", "TLS-C", "SSL":
					return actStartTLS, nil
				}
				return actContinue, s.send("504 AUTH mechanism not supported; use AUTH TLS")
			case "NOOP":
				return actContinue, s.send("200 OK")
			case "QUIT":
				return actQuit, s.send("221 Goodbye")
			}
			if s.cfg.Policy == Optional {
				return actHandoff, nil
			}
			return actContinue, s.send("530 TLS required: send AUTH TLS first")
		},
	}
}
