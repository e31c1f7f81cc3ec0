package imap_test

import (
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The IMAP application behind serve's upgrade against curl, verification on.

func TestCurlIMAP(t *testing.T) {
	imap := servetest.Start(t, starttls.IMAP)
	out, err := servetest.Curl(t, "--cacert", imap.CA, "imap://"+imap.Addr+"/", "-u", "user:secret")
	if err != nil || !strings.Contains(out, "INBOX") {
		t.Errorf("curl imap: %v\n%s", err, out)
	}
	// An untrusted server certificate is refused by curl: verification is on.
	if out, err := servetest.Curl(t, "imap://"+imap.Addr+"/", "-u", "user:secret"); err == nil {
		t.Errorf("curl trusted a throwaway CA it was not given: %s", out)
	}
}
