package check

import (
	"github.com/starttls-go/starttls/internal/proto/imap"
	"github.com/starttls-go/starttls/internal/proto/postgres"
	"github.com/starttls-go/starttls/internal/proto/sieve"
	"github.com/starttls-go/starttls/internal/proto/smtp"
)

// The judges of the logins that moved to their protocol's folder, under
// the names this package's tests know them by.
var (
	judgeIMAPLogin = imap.JudgeLogin
	judgeSieveAuth = sieve.JudgeAuth
	sieveStatus    = sieve.Status
	judgeSMTPAuth  = smtp.LoginJudge
	// pgGSSENCRequest is no judge, but moved with the probe that sends it.
	pgGSSENCRequest = postgres.GSSENCRequest
)
