package nntp

import (
	"strings"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// NNTP as clienttest's scenario server speaks it before TLS.
var clientTest = &registry.ClientTest{
	Line: &registry.CTLine{
		Greeting:    "200 news.test NNTP clienttest ready\r\n",
		CapsVerbs:   []string{"CAPABILITIES"},
		Caps:        ctCaps,
		UpgradeVerb: "STARTTLS",
		GoAhead:     func(string) string { return "382 Continue with TLS negotiation\r\n" },
		OK:          func(_, verb string) string { return ctOK(verb) },
		Quit:        []string{"QUIT"},
		Refusals: map[string]string{
			"580": "580 Can not initiate TLS negotiation\r\n",
			"502": "502 Command unavailable\r\n",
			"483": "483 Command unavailable until suitable privacy has been arranged\r\n",
		},
		NoTLS:      "502",
		Inject:     func(string) string { return "101 Capability list:\r\nVERSION 2\r\nREADER\r\nAUTHINFO USER\r\n.\r\n" },
		Mechanisms: []string{"AUTHINFO USER SASL", "SASL PLAIN LOGIN"},
	},
	Leaks:     []string{"AUTHINFO", "POST", "ARTICLE", "BODY", "GROUP"},
	LoginLine: "AUTHINFO USER user",
}

func ctCaps(_, _ string, offer bool, extra []string) string {
	lines := []string{"101 Capability list:", "VERSION 2", "READER"}
	lines = append(lines, extra...)
	if offer {
		lines = append(lines, "STARTTLS")
	}
	return strings.Join(append(lines, "."), "\r\n") + "\r\n"
}

func ctOK(verb string) string {
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
