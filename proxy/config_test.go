package proxy

import (
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls"
)

func TestParseFile(t *testing.T) {
	pki := newTestPKI(t)
	good := `log_format: json
metrics: 127.0.0.1:0
drain_timeout: 5s
max_connections: 100
listeners:
  - name: smtp
    mode: terminate
    proto: smtp
    listen: 127.0.0.1:2525
    backend: 127.0.0.1:10025
    cert: ` + pki.certFile + `
    key: ` + pki.keyFile + `
    capabilities: ["SIZE 1000", PIPELINING]
    proxy_protocol: true
    max_per_ip: 5
    idle_timeout: 2m
  - name: imaps
    proto: imaps
    listen: 127.0.0.1:1993
    backend: 127.0.0.1:143
    cert: server.pem
    key: server.key
  - name: out
    mode: originate
    proto: submission
    listen: 127.0.0.1:1587
    backend: mail.example.org:587
    ca: ca.pem
    servername: mail.example.org
    pins: ["sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="]
`
	path := writeFile(t, pki.dir, "proxy.yaml", good)
	f, err := LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Listeners) != 3 || f.LogFormat != "json" || f.Drain != 5*time.Second || f.MaxConns != 100 {
		t.Fatalf("parsed %+v", f)
	}
	s := f.Listeners[0]
	if s.Mode != Terminate || s.Protocol != starttls.SMTP || !s.ProxyProtocol || s.MaxPerIP != 5 || s.Timeouts.Idle != 2*time.Minute || len(s.Capabilities) != 2 {
		t.Errorf("smtp listener %+v", s)
	}
	if f.Listeners[1].Mode != Implicit {
		t.Errorf("imaps mode %q", f.Listeners[1].Mode)
	}
	// Both listeners name the same files (absolute and relative): one store.
	if len(f.Certificates) != 1 || f.Listeners[0].Certificates != f.Listeners[1].Certificates {
		t.Errorf("%d certificate stores", len(f.Certificates))
	}
	o := f.Listeners[2]
	if o.ClientTLS == nil || o.ClientTLS.RootCAs == nil || o.ClientTLS.ServerName != "mail.example.org" || len(o.Pins) != 1 {
		t.Errorf("originate listener %+v", o)
	}
}

// Every error names the file and the line of the offending value.
func TestParseFileErrors(t *testing.T) {
	pki := newTestPKI(t)
	head := "listeners:\n  - name: a\n    mode: terminate\n    proto: smtp\n    listen: 127.0.0.1:1\n    backend: 127.0.0.1:2\n"
	certs := "    cert: server.pem\n    key: server.key\n"
	for _, tc := range []struct{ name, body, want string }{
		{"syntax", "listeners: [\n", "line"},
		{"unknown top key", "log_formt: json\n" + head + certs, ":1: unknown key \"log_formt\""},
		{"unknown listener key", head + certs + "    backnd: x\n", ":9: unknown key \"backnd\""},
		{"bad mode", strings.Replace(head, "terminate", "terminator", 1) + certs, ":3: listener \"a\": mode: \"terminator\""},
		{"bad proto", strings.Replace(head, "smtp", "gopher", 1) + certs, ":4: listener \"a\": proto: \"gopher\""},
		{"missing backend", strings.Replace(head, "    backend: 127.0.0.1:2\n", "", 1) + certs, ":2: listener \"a\": backend: missing"},
		{"bad listen", strings.Replace(head, "127.0.0.1:1", "nowhere", 1) + certs, ":5: listener \"a\": listen: \"nowhere\""},
		{"missing cert file", head + "    cert: nope.pem\n    key: nope.key\n", ":7: listener \"a\": cert: certificate"},
		{"no cert", head, ":2: listener \"a\": cert: mode terminate needs cert and key"},
		{"bad duration", head + certs + "    idle_timeout: soon\n", "line 9"},
		{"bad log format", "log_format: xml\n" + head + certs, ":1: log_format \"xml\""},
		{"duplicate listen", head + certs + strings.Replace(strings.TrimPrefix(head, "listeners:\n"), "name: a", "name: b", 1) + certs, ":12: listen 127.0.0.1:1 already used on line 2"},
		{"no listeners", "log_format: json\n", "listeners: want a list"},
		{"ca in terminate", head + certs + "    ca: ca.pem\n", ":9: listener \"a\": ca: ca, servername and pins are for mode originate"},
		{"bad pin", strings.Replace(head, "terminate", "originate", 1) + "    pins: [nope]\n", ":7: listener \"a\": pins: pin \"nope\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, pki.dir, "bad.yaml", tc.body)
			_, err := LoadFile(path)
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\nwant it to name %s and contain %q", err, path, tc.want)
			}
		})
	}
}

func TestParsePin(t *testing.T) {
	for _, s := range []string{"sha256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", strings.Repeat("ab", 32)} {
		if _, err := ParsePin(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	for _, s := range []string{"", "sha256:", "sha256:AAAA", "zz"} {
		if _, err := ParsePin(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}
