package ftp_test

import (
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The FTP application behind serve's upgrade against curl.

// curl lists an FTP root over AUTH TLS with a TLS-protected passive data
// connection (PROT P), verification on.
func TestCurlFTP(t *testing.T) {
	s := servetest.Start(t, starttls.FTP)
	out, err := servetest.Curl(t, "--cacert", s.CA, "-u", "user:secret", "ftp://"+s.Addr+"/", "-v")
	if err != nil {
		t.Fatalf("curl ftp: %v\n%s", err, out)
	}
	for _, want := range []string{"AUTH TLS", "PROT P", "226 Transfer complete"} {
		if !strings.Contains(out, want) {
			t.Errorf("curl ftp output lacks %q:\n%s", want, out)
		}
	}
	if out, err := servetest.Curl(t, "--cacert", s.CA, "-u", "user:wrong", "ftp://"+s.Addr+"/"); err == nil {
		t.Errorf("curl ftp with a wrong password succeeded: %s", out)
	}
}
