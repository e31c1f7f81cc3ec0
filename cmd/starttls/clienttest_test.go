package main

import (
	"strings"
	"testing"
)

// --list maps a protocol to the one it is played as, and refuses one
// without scenarios instead of printing nothing.
func TestClienttestList(t *testing.T) {
	for _, tc := range []struct {
		proto string
		code  int
		want  string
	}{
		{"submission", 0, "legacy-downgrade"}, // SMTP's scenarios
		{"postgres", 0, "SSLRequest is answered with 'N'"},
		{"mysql", 0, "cert-expired"},
		{"smtps", 2, "clienttest speaks"},
		{"bogus", 2, "clienttest speaks"},
	} {
		code, out, errOut := runCLI(t, "", "clienttest", "--proto", tc.proto, "--list")
		if code != tc.code || !strings.Contains(out+errOut, tc.want) {
			t.Errorf("--proto %s --list: exit %d, want %d, output lacks %q:\n%s%s", tc.proto, code, tc.code, tc.want, out, errOut)
		}
	}
	if _, out, _ := runCLI(t, "", "clienttest", "--proto", "mysql", "--list"); strings.Contains(out, "inject-after-go-ahead") {
		t.Errorf("mysql lists an injection scenario, but its server never answers the SSLRequest:\n%s", out)
	}
	code, out, _ := runCLI(t, "", "clienttest", "--help")
	if code != 0 || !strings.Contains(out, "ldap, lmtp, mysql") {
		t.Errorf("--help does not list the protocols:\n%s", out)
	}
}
