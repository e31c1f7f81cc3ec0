package clienttest

import (
	"net"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls"
)

// personality is how a protocol's server talks before TLS: what the
// scenarios change (capabilities, the answer to the upgrade command) and
// what they watch for (commands that leak credentials or mail).
type personality struct {
	greeting string
	// capsVerbs ask for capabilities; the reply comes from caps.
	capsVerbs []string
	// caps answers a capability query; offer says whether the upgrade is
	// listed, extra lines are added (tampering, mechanism exposure).
	caps func(tag string, offer bool, extra []string) string
	// upgradeVerb starts TLS (after a tag for IMAP).
	upgradeVerb string
	goAhead     func(tag string) string
	// leaks are verbs that must never be sent in plaintext: they carry
	// credentials, mail or mailbox contents.
	leaks []string
	// leak, when set, replaces leaks: for messages whose name alone does
	// not tell (an HTTP request leaks with credentials or a body).
	leak func(text string) bool
	// named: transcript lines are message names given by a dialect's
	// framer (BindRequest, auth), shown as they are, not verbs to upper-case.
	named bool
	// ok answers anything else so that the client goes on talking.
	ok   func(tag, verb string) string
	quit []string
	// refusals are named answers to the upgrade command that are not a go-ahead.
	refusals map[string]string
	// inject is what a response-injection attacker appends to the go-ahead:
	// a plausible answer to the client's first command inside TLS.
	inject func(tag string) string
	// mechanisms are plaintext authentication offers (mechanism exposure).
	mechanisms []string
	// tagged reports whether commands carry tags (IMAP).
	tagged bool
	// capsInGreeting: the greeting is the capability list (ManageSieve),
	// built by caps with an empty tag.
	capsInGreeting bool
	// capsAfterTLS is what the server sends unasked as soon as TLS is up
	// (ManageSieve re-sends its capabilities, RFC 5804 §2.2); the client
	// speaks second inside TLS.
	capsAfterTLS string
	// wrap, when set, stands between the client and the serve
	// application inside TLS, for what the application does not do.
	wrap func(net.Conn) net.Conn
	// farewell, when set, is sent after ok's answer to a quit verb
	// (IMAP's untagged BYE and tagged OK).
	farewell func(tag string) string
}

var personalities = map[starttls.Protocol]*personality{
	starttls.SMTP: {
		greeting:  "220 mail.test ESMTP clienttest\r\n",
		capsVerbs: []string{"EHLO", "HELO", "LHLO"},
		caps: func(_ string, offer bool, extra []string) string {
			lines := []string{"mail.test", "PIPELINING", "SIZE 10240000", "8BITMIME"}
			lines = append(lines, extra...)
			if offer {
				lines = append(lines, "STARTTLS")
			}
			return smtpMulti(250, lines)
		},
		upgradeVerb: "STARTTLS",
		goAhead:     func(string) string { return "220 2.0.0 Ready to start TLS\r\n" },
		leaks:       []string{"AUTH", "MAIL", "RCPT", "DATA", "BDAT"},
		ok:          func(_, verb string) string { return smtpOK(verb) },
		quit:        []string{"QUIT"},
		refusals: map[string]string{
			"454": "454 4.7.0 TLS not available due to temporary reason\r\n",
			"502": "502 5.5.2 Command not implemented\r\n",
			"500": "500 5.5.1 Command unrecognized\r\n",
			"501": "501 5.5.4 Syntax error\r\n",
			"354": "354 Go ahead\r\n",
			"221": "221 2.0.0 Bye\r\n",
		},
		inject:     func(string) string { return "250-mail.test\r\n250 AUTH PLAIN LOGIN\r\n" },
		mechanisms: []string{"AUTH PLAIN LOGIN CRAM-MD5"},
	},
	starttls.IMAP: {
		greeting:  "* OK mail.test IMAP4rev1 clienttest\r\n",
		capsVerbs: []string{"CAPABILITY"},
		caps: func(tag string, offer bool, extra []string) string {
			c := []string{"IMAP4rev1"}
			if offer {
				c = append(c, "STARTTLS", "LOGINDISABLED")
			}
			c = append(c, extra...)
			return "* CAPABILITY " + strings.Join(c, " ") + "\r\n" + tag + " OK CAPABILITY completed\r\n"
		},
		upgradeVerb: "STARTTLS",
		goAhead:     func(tag string) string { return tag + " OK Begin TLS negotiation now\r\n" },
		leaks:       []string{"LOGIN", "AUTHENTICATE", "SELECT", "EXAMINE", "LIST", "LSUB", "FETCH", "APPEND", "STATUS"},
		ok:          func(tag, _ string) string { return tag + " OK done\r\n" },
		quit:        []string{"LOGOUT"},
		farewell:    func(tag string) string { return "* BYE\r\n" + tag + " OK LOGOUT completed\r\n" },
		refusals: map[string]string{
			"NO":  "{tag} NO TLS not available\r\n",
			"BAD": "{tag} BAD Unknown command\r\n",
			"BYE": "* BYE going away\r\n",
		},
		inject: func(tag string) string {
			return "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + nextTag(tag) + " OK CAPABILITY completed\r\n"
		},
		tagged:     true,
		mechanisms: []string{"AUTH=PLAIN", "AUTH=LOGIN"},
	},
	starttls.POP3: {
		greeting:  "+OK mail.test POP3 clienttest\r\n",
		capsVerbs: []string{"CAPA"},
		caps: func(_ string, offer bool, extra []string) string {
			lines := []string{"+OK Capability list follows", "TOP", "UIDL"}
			lines = append(lines, extra...)
			if offer {
				lines = append(lines, "STLS")
			}
			return strings.Join(append(lines, "."), "\r\n") + "\r\n"
		},
		upgradeVerb: "STLS",
		goAhead:     func(string) string { return "+OK Begin TLS negotiation\r\n" },
		leaks:       []string{"USER", "PASS", "APOP", "AUTH", "RETR", "TOP", "LIST", "STAT", "UIDL"},
		ok:          func(string, string) string { return "+OK\r\n" },
		quit:        []string{"QUIT"},
		refusals: map[string]string{
			"-ERR": "-ERR TLS not available\r\n",
		},
		inject:     func(string) string { return "+OK\r\nUSER\r\nSASL PLAIN\r\n.\r\n" },
		mechanisms: []string{"USER", "SASL PLAIN LOGIN"},
	},
	starttls.FTP: {
		greeting:  "220 ftp.test FTP clienttest\r\n",
		capsVerbs: []string{"FEAT"},
		caps: func(_ string, offer bool, extra []string) string {
			lines := []string{"211-Features:", " PASV", " UTF8"}
			if offer {
				lines = append(lines, " AUTH TLS", " PBSZ", " PROT")
			}
			for _, e := range extra {
				lines = append(lines, " "+e)
			}
			return strings.Join(append(lines, "211 End"), "\r\n") + "\r\n"
		},
		upgradeVerb: "AUTH",
		goAhead:     func(string) string { return "234 Proceed with negotiation\r\n" },
		leaks:       []string{"USER", "PASS", "RETR", "STOR", "LIST", "NLST"},
		ok: func(_, verb string) string {
			if verb == "PBSZ" || verb == "PROT" || verb == "TYPE" {
				return "200 OK\r\n"
			}
			return "502 Not implemented\r\n"
		},
		quit: []string{"QUIT"},
		refusals: map[string]string{
			"534": "534 Request denied for policy reasons\r\n",
			"500": "500 Unknown command\r\n",
		},
		inject: func(string) string { return "200 PBSZ=0\r\n200 Protection level set\r\n" },
	},
	starttls.NNTP: {
		greeting:  "200 news.test NNTP clienttest ready\r\n",
		capsVerbs: []string{"CAPABILITIES"},
		caps: func(_ string, offer bool, extra []string) string {
			lines := []string{"101 Capability list:", "VERSION 2", "READER"}
			lines = append(lines, extra...)
			if offer {
				lines = append(lines, "STARTTLS")
			}
			return strings.Join(append(lines, "."), "\r\n") + "\r\n"
		},
		upgradeVerb: "STARTTLS",
		goAhead:     func(string) string { return "382 Continue with TLS negotiation\r\n" },
		leaks:       []string{"AUTHINFO", "POST", "ARTICLE", "BODY", "GROUP"},
		ok:          func(_, verb string) string { return nntpOK(verb) },
		quit:        []string{"QUIT"},
		refusals: map[string]string{
			"580": "580 Can not initiate TLS negotiation\r\n",
			"502": "502 Command unavailable\r\n",
			"483": "483 Command unavailable until suitable privacy has been arranged\r\n",
		},
		inject:     func(string) string { return "101 Capability list:\r\nVERSION 2\r\nREADER\r\nAUTHINFO USER\r\n.\r\n" },
		mechanisms: []string{"AUTHINFO USER SASL", "SASL PLAIN LOGIN"},
	},
}

func nntpOK(verb string) string {
	switch verb {
	case "MODE":
		return "201 Reader mode, posting not allowed\r\n"
	case "QUIT":
		return "205 Bye\r\n"
	case "AUTHINFO":
		return "481 Authentication failed\r\n"
	case "POST":
		return "440 Posting not permitted\r\n"
	case "GROUP":
		return "411 No such newsgroup\r\n"
	case "ARTICLE", "BODY", "HEAD", "STAT":
		return "412 No newsgroup selected\r\n"
	case "LIST":
		return "215 Newsgroups follow\r\n.\r\n"
	case "DATE":
		return "111 20260101000000\r\n"
	}
	return "500 Unknown command\r\n"
}

func smtpMulti(code int, lines []string) string {
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString(strconv.Itoa(code) + sep + l + "\r\n")
	}
	return b.String()
}

func smtpOK(verb string) string {
	switch verb {
	case "NOOP", "RSET":
		return "250 2.0.0 OK\r\n"
	case "QUIT":
		return "221 2.0.0 Bye\r\n"
	case "AUTH":
		return "535 5.7.8 Authentication credentials invalid\r\n"
	case "MAIL", "RCPT":
		return "250 2.1.0 OK\r\n"
	case "DATA":
		return "554 5.5.1 No valid recipients\r\n"
	}
	return "502 5.5.2 Command not recognized\r\n"
}

// nextTag guesses the tag a client uses after tag: the trailing number
// plus one, as almost every client numbers its commands.
func nextTag(tag string) string {
	i := len(tag)
	for i > 0 && tag[i-1] >= '0' && tag[i-1] <= '9' {
		i--
	}
	if i == len(tag) {
		return tag + "1"
	}
	n, err := strconv.Atoi(tag[i:])
	if err != nil {
		return tag + "1"
	}
	num := strconv.Itoa(n + 1)
	if w := len(tag) - i; len(num) < w {
		num = strings.Repeat("0", w-len(num)) + num
	}
	return tag[:i] + num
}
