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
	for i := 0; i < 1000 && ctx.Err() == nil; i++ {
		line, err := s.ReadLine()
		if err != nil {
			return
		}
		verb, _, _ := strings.Cut(line, " ")
		var reply []string
		switch strings.ToUpper(verb) {
		case "CAPABILITIES":
			reply = []string{"101 Capability list:", "VERSION 2", "READER", "LIST ACTIVE NEWSGROUPS", "."}
		case "MODE":
			reply = []string{"201 Reader mode, posting not allowed"}
		case "DATE":
			reply = []string{"111 " + time.Now().UTC().Format("20060102150405")}
		case "LIST":
			reply = []string{"215 Newsgroups follow", "."}
		case "GROUP":
			reply = []string{"411 No such newsgroup"}
		case "STARTTLS":
			reply = []string{"502 TLS already active"}
		case "QUIT":
			_ = s.Write("205 Bye")
			return
		default:
			reply = []string{"500 Unknown command"}
		}
		if s.Write(reply...) != nil {
			return
		}
	}
}
