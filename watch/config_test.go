package watch

import (
	"errors"
	"strings"
	"testing"
	"time"
)

const goodConfig = `
db: /var/lib/starttls/watch.db
interval: 5m
concurrency: 16
targets:
  - url: smtp://mx.example.org:25
  - url: imap://imap.example.org
    interval: 1h
    depth: full
    alerts: [ops]
domains:
  - domain: Example.ORG.
alerts:
  - name: ops
    webhook: https://hooks.example.org/starttls
    min_severity: medium
    mail:
      server: submission://smtp.example.org:587
      from: watch@example.org
      to: [ops@example.org]
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig("watch.yaml", []byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval.D() != 5*time.Minute || c.Concurrency != 16 || c.Depth != "quick" || c.UnreachableAfter != 3 {
		t.Fatalf("defaults/values: %+v", c)
	}
	if got := strings.Join(c.Subjects(), " "); got != "target:smtp://mx.example.org:25 target:imap://imap.example.org:143 domain:example.org" {
		t.Fatalf("subjects %q", got)
	}
	if c.TLSRPT.FailureRate != 0.05 || c.TLSRPT.MinSessions != 10 || c.TLSRPT.Alerts != nil {
		t.Fatalf("tlsrpt defaults %+v", c.TLSRPT)
	}
	if c.Alerts[0].Mail.server.Port != 587 {
		t.Fatalf("mail server %+v", c.Alerts[0].Mail.server)
	}
}

// A malformed configuration is refused with the line and the field.
func TestParseConfigErrors(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unknown field", "interval: 5m\nintervall: 3m\n", "line 2: field intervall not found"},
		{"bad duration", "targets:\n  - url: smtp://a.test\n    interval: soon\n", "line 3"},
		{"bad url", "targets:\n  - url: smtp://a.test\n  - url: gopher://b.test\n", "c.yaml:3: targets[1].url: "},
		{"twice", "targets:\n  - url: smtp://a.test\n  - url: smtp://a.test:25\n", "c.yaml:3: targets[1].url: listed twice"},
		{"depth", "depth: deep\n", "c.yaml:1: depth:"},
		{"route", "targets:\n  - url: smtp://a.test\n    alerts: [pager]\n", `c.yaml:3: targets[0].alerts[0]: no alert route named "pager"`},
		{"webhook", "alerts:\n  - name: x\n    webhook: ftp://x\n", "c.yaml:3: alerts[0].webhook"},
		{"mail server", "alerts:\n  - name: x\n    mail:\n      server: imap://x\n      from: a@b\n      to: [c@d]\n", "c.yaml:4: alerts[0].mail.server: want smtp"},
		{"recipient", "alerts:\n  - name: x\n    mail:\n      server: smtp://x\n      from: a@b\n      to: [c@d, \"e>f@g\"]\n", "c.yaml:6: alerts[0].mail.to[1]"},
		{"domain", "domains:\n  - domain: \"exa mple.org\"\n", "c.yaml:2: domains[0].domain"},
		{"tlsrpt rate", "tlsrpt:\n  failure_rate: 5\n", "c.yaml:2: tlsrpt.failure_rate: must be a fraction"},
		{"tlsrpt route", "alerts:\n  - name: ops\n    webhook: https://h.test/\ntlsrpt:\n  alerts: [ops, pager]\n", `c.yaml:5: tlsrpt.alerts[1]: no alert route named "pager"`},
		{"jitter", "jitter: 2\n", "c.yaml:1: jitter"},
		{"empty", "", "empty configuration"},
		{"not yaml", "targets: [\n", "c.yaml"},
		{"wrong type", "concurrency: many\n", "line 1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
	_, err := ParseConfig("c.yaml", []byte("depth: deep\n"))
	var ce *ConfigError
	if !errors.As(err, &ce) || ce.Line != 1 || ce.Field != "depth" {
		t.Fatalf("typed error %#v", err)
	}
}
