package irc

import (
	"context"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// app registers the client and answers PING; enough for a client to
// see it is talking IRC inside TLS.
func app(ctx context.Context, s registry.Session) {
	h := ":" + s.Hostname()
	nick := "*"
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		var reply []string
		switch strings.ToUpper(f[0]) {
		case "CAP":
			if len(f) > 1 && strings.EqualFold(f[1], "LS") {
				reply = []string{h + " CAP " + nick + " LS :multi-prefix"}
			}
		case "NICK":
			if len(f) > 1 {
				nick = strings.TrimPrefix(f[1], ":")
			}
		case "USER":
			reply = []string{h + " 001 " + nick + " :Welcome over TLS, " + nick, h + " 376 " + nick + " :End of MOTD"}
		case "PING":
			reply = []string{h + " PONG " + s.Hostname() + " :" + strings.TrimPrefix(strings.Join(f[1:], " "), ":")}
		case "QUIT":
			_ = s.Write("ERROR :Closing link")
			return
		default:
			reply = []string{h + " 421 " + nick + " " + f[0] + " :Unknown command"}
		}
		if len(reply) > 0 && s.Write(reply...) != nil {
			return
		}
	}
}
