package nntp

import (
	"context"
	"strings"
	"time"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// app is a reader-mode NNTP server (RFC 3977) with no newsgroups.
func app(ctx context.Context, s registry.Session) {
	if s.Implicit() && s.Write("200 "+s.Hostname()+" NNTP ready (posting not allowed here)") != nil {
		return
	}
	registry.Dialogue(ctx, s, answer)
}

func answer(line string) ([]string, bool) {
	verb, _, _ := strings.Cut(line, " ")
	switch strings.ToUpper(verb) {
	case "CAPABILITIES":
		return []string{"101 Capability list:", "VERSION 2", "READER", "LIST ACTIVE NEWSGROUPS", "."}, false
	case "MODE":
		return []string{"201 Reader mode, posting not allowed"}, false
	case "DATE":
		return []string{"111 " + time.Now().UTC().Format("20060102150405")}, false
	case "LIST":
		return []string{"215 Newsgroups follow", "."}, false
	case "GROUP":
		return []string{"411 No such newsgroup"}, false
	case "STARTTLS":
		return []string{"502 TLS already active"}, false
	case "QUIT":
		return []string{"205 Bye"}, true
	}
	return []string{"500 Unknown command"}, false
}
