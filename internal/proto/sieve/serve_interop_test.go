package sieve_test

import (
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The ManageSieve application behind serve's upgrade against
// sieve-connect.

// sieve-connect lists scripts on serve's ManageSieve app over STARTTLS,
// verified: the SASL capability after TLS, NOOP's TAG and the {n+}
// literal of AUTHENTICATE are what it needs; a wrong password fails.
func TestSieveConnect(t *testing.T) {
	bins := peer.Require(t, "sieve-connect")
	s := servetest.Start(t, starttls.Sieve)
	run := func(pass string) (string, error) {
		t.Helper()
		return peer.SieveConnectList(t, bins["sieve-connect"], s.Port, s.CA, pass)
	}
	out, err := run("secret")
	if err != nil {
		t.Fatalf("sieve-connect --list: %v\n%s", err, out)
	}
	for _, want := range []string{">>> STARTTLS", "TLS activated", `"SASL" "PLAIN"`} {
		if !strings.Contains(out, want) {
			t.Errorf("sieve-connect output lacks %q:\n%s", want, out)
		}
	}
	if out, err := run("wrong"); err == nil {
		t.Errorf("sieve-connect logged in with a wrong password:\n%s", out)
	}
}
