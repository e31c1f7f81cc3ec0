package pop3_test

import (
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The POP3 application behind serve's upgrade against curl, verification on.

func TestCurlPOP3(t *testing.T) {
	pop := servetest.Start(t, starttls.POP3)
	if out, err := servetest.Curl(t, "--cacert", pop.CA, "pop3://"+pop.Addr+"/", "-u", "user:secret"); err != nil {
		t.Errorf("curl pop3: %v\n%s", err, out)
	}
}
