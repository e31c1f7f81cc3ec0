package http

import (
	"fmt"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// serverHalf is HTTP's server side of the upgrade, registered by init.
func serverHalf() *dialog.ServerHalf {
	return &dialog.ServerHalf{
		GoAhead: func(s dialog.Server) error {
			return s.SendRaw([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: TLS/1.0, HTTP/1.1\r\nConnection: Upgrade\r\n\r\n"),
				"HTTP/1.1 101 Switching Protocols")
		},
		// RFC 2817 §3.3: the response to the upgrading request comes inside TLS.
		AfterTLS: func(s dialog.Server) error {
			return s.SendRaw([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), "HTTP/1.1 200 OK (to the OPTIONS, inside TLS)")
		},
		Serve: func(s dialog.Server) (dialog.Action, error) {
			for i := 0; i < s.Config().MaxCommands; i++ {
				var raw strings.Builder
				readLine := func() (string, error) {
					l, err := s.ReadLine()
					raw.WriteString(l + "\r\n")
					return l, err
				}
				start, h, err := clientReadHead(readLine)
				if err != nil {
					return 0, s.IOErr(err)
				}
				if clientHeaderHas(h, "Upgrade", "TLS") && clientHeaderHas(h, "Connection", "Upgrade") {
					if h.Get("Content-Length") != "" || h.Get("Transfer-Encoding") != "" {
						// A body would be plaintext read across the upgrade.
						if err := s.Send("HTTP/1.1 400 Bad Request", "Content-Length: 0", "Connection: close", ""); err != nil {
							return 0, err
						}
						return 0, s.Fail(fmt.Errorf("%w: upgrade request with a body", dialog.ErrProtocol), start)
					}
					return dialog.StartTLS, nil
				}
				if s.Config().Optional {
					s.SetPending([]byte(raw.String()))
					return dialog.Handoff, nil
				}
				// RFC 2817 §4.2: 426 tells the client to upgrade first.
				if err := s.Send("HTTP/1.1 426 Upgrade Required", "Upgrade: TLS/1.0, HTTP/1.1", "Connection: Upgrade",
					"Content-Type: text/plain", "Content-Length: 22", "", "TLS upgrade required"); err != nil {
					return 0, err
				}
				if h.Get("Content-Length") != "" || h.Get("Transfer-Encoding") != "" {
					return 0, s.Fail(fmt.Errorf("%w: refused request had a body", dialog.ErrProtocol), start)
				}
			}
			return 0, s.Fail(fmt.Errorf("%w: more than %d requests before TLS", dialog.ErrProtocol, s.Config().MaxCommands), "")
		},
	}
}
