// Package all imports every protocol folder under internal/proto, so
// that each registers its description with internal/proto/registry. A
// tool that looks protocols up in the registry imports it for its side
// effect; a new protocol's folder gets one line here.
package all

import (
	_ "github.com/starttls-go/starttls/internal/proto/ftp"
	_ "github.com/starttls-go/starttls/internal/proto/http"
	_ "github.com/starttls-go/starttls/internal/proto/imap"
	_ "github.com/starttls-go/starttls/internal/proto/irc"
	_ "github.com/starttls-go/starttls/internal/proto/ldap"
	_ "github.com/starttls-go/starttls/internal/proto/mysql"
	_ "github.com/starttls-go/starttls/internal/proto/nntp"
	_ "github.com/starttls-go/starttls/internal/proto/pop3"
	_ "github.com/starttls-go/starttls/internal/proto/postgres"
	_ "github.com/starttls-go/starttls/internal/proto/sieve"
	_ "github.com/starttls-go/starttls/internal/proto/smtp"
	_ "github.com/starttls-go/starttls/internal/proto/xmpp"
)
