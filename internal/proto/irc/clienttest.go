package irc

import (
	"bufio"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// IRC as clienttest's scenario server speaks it before TLS (IRCv3 tls:
// STARTTLS → 670), with what registration needs to keep a client talking.
var clientTest = &registry.ClientTest{
	Dialect: &registry.CTDialect{
		Open: func(offer bool) registry.CTHandler { return &ctHandler{offer: offer} },
		Refusals: map[string]string{
			"691": "tls is listed in CAP LS but STARTTLS is answered with 691 (STARTTLS failure)",
		},
		StripSummary: "CAP LS does not list tls and STARTTLS is an unknown command (421)",
		InjectMarker: registry.CTInjectMarker,
	},
	Leaks:    []string{"PASS", "AUTHENTICATE", "PRIVMSG", "OPER"},
	LoginRaw: []byte("PASS secret\r\nNICK user\r\nUSER user 0 * :user\r\nCAP END\r\n"),
}

// ctHandler keeps what registration needs: a welcome (001) once NICK and
// USER are in and capability negotiation is over.
type ctHandler struct {
	offer, inTLS, capNeg, welcomed bool
	nick, user                     string
}

func (h *ctHandler) Frame(r *bufio.Reader) (registry.CTMsg, error) {
	for i := 0; i < 100; i++ {
		line, err := registry.CTReadLine(r)
		if err != nil {
			return registry.CTMsg{}, err
		}
		if strings.TrimSpace(line) != "" {
			return registry.CTMsg{Text: line}, nil
		}
	}
	return registry.CTMsg{}, registry.ErrCTTooLarge
}

func ctSplit(line string) (verb string, args []string) {
	if strings.HasPrefix(line, "@") || strings.HasPrefix(line, ":") {
		_, line, _ = strings.Cut(line, " ")
	}
	head, trailing, hasTrailing := strings.Cut(line, " :")
	f := strings.Fields(head)
	if len(f) == 0 {
		return "", nil
	}
	if hasTrailing {
		f = append(f, trailing)
	}
	return strings.ToUpper(f[0]), f[1:]
}

func (h *ctHandler) Greeting() []byte { return nil }
func (h *ctHandler) IsUpgrade(m registry.CTMsg) bool {
	v, _ := ctSplit(m.Text)
	return v == "STARTTLS"
}
func (h *ctHandler) GoAhead(registry.CTMsg) []byte {
	return []byte(":irc.test 670 * :STARTTLS successful, proceed with TLS handshake\r\n")
}

// Inject asks for a PONG: a client that sends one with the marker read it.
func (h *ctHandler) Inject(registry.CTMsg) []byte {
	return []byte("PING :" + registry.CTInjectMarker + "\r\n")
}
func (h *ctHandler) TLSStarted(registry.CTMsg) []byte { h.inTLS = true; return nil }

func (h *ctHandler) Refuse(key string, _ registry.CTMsg) ([]byte, bool) {
	if key == "691" {
		return []byte(":irc.test 691 * :STARTTLS failure\r\n"), false
	}
	return []byte(":irc.test 421 * STARTTLS :Unknown command\r\n"), false
}

func (h *ctHandler) Handle(m registry.CTMsg, inTLS bool) ([]byte, bool) {
	verb, args := ctSplit(m.Text)
	arg := func(i int) string {
		if i < len(args) {
			return args[i]
		}
		return ""
	}
	var out string
	switch verb {
	case "CAP":
		switch strings.ToUpper(arg(0)) {
		case "LS":
			h.capNeg = true
			caps := "multi-prefix sasl"
			if h.offer && !inTLS {
				caps += " tls"
			}
			out = ":irc.test CAP * LS :" + caps + "\r\n"
		case "REQ":
			h.capNeg = true
			out = ":irc.test CAP * ACK :" + arg(1) + "\r\n"
		case "LIST":
			out = ":irc.test CAP * LIST :\r\n"
		case "END":
			h.capNeg = false
		}
	case "PING":
		out = ":irc.test PONG irc.test :" + arg(0) + "\r\n"
	case "NICK":
		h.nick = arg(0)
	case "USER":
		h.user = arg(0)
	case "AUTHENTICATE":
		if strings.EqualFold(arg(0), "PLAIN") {
			out = "AUTHENTICATE +\r\n"
		} else {
			out = ":irc.test 904 * :SASL authentication failed\r\n"
		}
	case "QUIT":
		return []byte("ERROR :Closing link\r\n"), true
	}
	if h.nick != "" && h.user != "" && !h.capNeg && !h.welcomed {
		h.welcomed = true
		out += ":irc.test 001 " + h.nick + " :Welcome to clienttest\r\n:irc.test 376 " + h.nick + " :End of MOTD\r\n"
	}
	return []byte(out), false
}
