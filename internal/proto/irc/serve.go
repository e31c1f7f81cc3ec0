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
	registry.Dialogue(ctx, s, func(line string) ([]string, bool) {
		f := strings.Fields(line)
		if len(f) == 0 {
			return nil, false
		}
		switch strings.ToUpper(f[0]) {
		case "CAP":
			if len(f) > 1 && strings.EqualFold(f[1], "LS") {
				return []string{h + " CAP " + nick + " LS :multi-prefix"}, false
			}
		case "NICK":
			if len(f) > 1 {
				nick = strings.TrimPrefix(f[1], ":")
			}
		case "USER":
			return []string{h + " 001 " + nick + " :Welcome over TLS, " + nick, h + " 376 " + nick + " :End of MOTD"}, false
		case "PING":
			return []string{h + " PONG " + s.Hostname() + " :" + strings.TrimPrefix(strings.Join(f[1:], " "), ":")}, false
		case "QUIT":
			return []string{"ERROR :Closing link"}, true
		default:
			return []string{h + " 421 " + nick + " " + f[0] + " :Unknown command"}, false
		}
		return nil, false
	})
}
