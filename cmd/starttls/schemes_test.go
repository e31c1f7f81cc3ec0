package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"strconv"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/certs"
	"github.com/starttls-go/starttls/serve"
)

// serveProto starts the serve package's server of p on loopback with a
// certificate for hosts (default localhost and the loopback addresses).
func serveProto(t *testing.T, p starttls.Protocol, hostname string, hosts ...string) (addr, caFile string) {
	t.Helper()
	pki := newTestPKI(t, nil)
	if len(hosts) > 0 {
		leaf, err := pki.ca.Issue(certs.LeafOptions{Hosts: hosts})
		if err != nil {
			t.Fatal(err)
		}
		pki.leaf = leaf.TLS
	}
	ctx, cancel := context.WithCancel(context.Background())
	s, err := serve.Start(ctx, serve.Options{Protocol: p, Hostname: hostname,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pki.leaf}}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = s.Close() })
	return s.Addr.String(), pki.caFile
}

func decodeConnect(t *testing.T, out string) ConnectReport {
	t.Helper()
	var r ConnectReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, out)
	}
	return r
}

// Each URL scheme reaches its protocol's dialogue through connect --json,
// and without a port gets the protocol's default one.
func TestConnectSchemes(t *testing.T) {
	cases := []struct {
		scheme string
		proto  starttls.Protocol
		port   int
		extra  []string
	}{
		// The server answers for the domain localhost, not 127.0.0.1.
		{"xmpp", starttls.XMPP, 5222, []string{"--xmpp-host", "localhost"}},
		{"xmpp-server", starttls.XMPPServer, 5269, []string{"--xmpp-host", "localhost"}},
		{"ldap", starttls.LDAP, 389, nil},
		{"ftp", starttls.FTP, 21, nil},
		{"nntp", starttls.NNTP, 119, nil},
		{"sieve", starttls.Sieve, 4190, nil},
		{"postgres", starttls.Postgres, 5432, nil},
		{"postgresql", starttls.Postgres, 5432, nil},
		{"mysql", starttls.MySQL, 3306, nil},
		{"irc", starttls.IRC, 6667, nil},
		{"http", starttls.HTTP, 80, nil},
		{"imaps", starttls.IMAPS, 993, nil},
		{"ldaps", starttls.LDAPS, 636, nil},
	}
	for _, tc := range cases {
		t.Run(tc.scheme, func(t *testing.T) {
			addr, ca := serveProto(t, tc.proto, "")
			args := append([]string{"connect", "--json", "--timeout", "5s", "--ca", ca, tc.scheme + "://" + addr}, tc.extra...)
			code, out, errs := runCLI(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d: %s\n%s", code, errs, out)
			}
			r := decodeConnect(t, out)
			if r.Protocol != string(tc.proto) || r.Status != starttls.StatusSuccess || r.TLS == nil || !r.Verification.OK {
				t.Fatalf("protocol %q status %q tls %v verification %+v", r.Protocol, r.Status, r.TLS, r.Verification)
			}
			info, _ := starttls.Lookup(tc.proto)
			sent := 0
			for _, e := range r.Transcript {
				if e.Sent && !e.TLS {
					sent++
				}
			}
			if info.Implicit != (sent == 0) {
				t.Errorf("implicit %v but %d plaintext messages sent: %+v", info.Implicit, sent, r.Transcript)
			}

			// No port: the target names the default one (whatever answers
			// there, if anything).
			_, out, _ = runCLI(t, "", "connect", "--json", "--timeout", "1s", tc.scheme+"://127.0.0.1")
			if r := decodeConnect(t, out); r.Target != string(tc.proto)+"://127.0.0.1:"+strconv.Itoa(tc.port) {
				t.Errorf("target without a port is %q, want port %d", r.Target, tc.port)
			}
		})
	}
}
