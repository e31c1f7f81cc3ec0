// Package watch runs check and mail on a schedule, stores every result
// (package watch/store), computes what changed between runs and sends
// alerts about it.
package watch

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/mail"
)

// Config is watch's YAML configuration (docs/watch.md lists every field).
type Config struct {
	DB               string   `yaml:"db"`
	HTTP             string   `yaml:"http"`
	Interval         Duration `yaml:"interval"`
	Jitter           float64  `yaml:"jitter"`
	Concurrency      int      `yaml:"concurrency"`
	Rate             float64  `yaml:"rate"`
	PerSubnet        int      `yaml:"per_subnet"`
	Timeout          Duration `yaml:"timeout"`
	Depth            string   `yaml:"depth"`
	CA               string   `yaml:"ca"`
	Resolver         string   `yaml:"resolver"`
	TrustAD          bool     `yaml:"trust_ad"`
	SMTPPort         int      `yaml:"smtp_port"`
	HTTPSPort        int      `yaml:"https_port"`
	LocalName        string   `yaml:"local_name"`
	UnreachableAfter int      `yaml:"unreachable_after"`
	ExpiryDays       []int    `yaml:"expiry_days"`
	Buffer           int      `yaml:"buffer"`
	GroupWindow      Duration `yaml:"group_window"`
	Retention        Duration `yaml:"retention"`
	Targets          []Target `yaml:"targets"`
	Domains          []Domain `yaml:"domains"`
	Alerts           []Route  `yaml:"alerts"`
	TLSRPT           TLSRPT   `yaml:"tlsrpt"`
}

// TLSRPT holds the alert rules of `starttls tlsrpt serve|fetch --alerts`,
// which sends along this file's routes.
type TLSRPT struct {
	// FailureRate is the failed fraction of a policy's sessions in one
	// report above which it alerts; default 0.05, 1 disables the rule.
	FailureRate float64 `yaml:"failure_rate"`
	// MinSessions is how many sessions a policy needs in a report before
	// its rate counts; default 10.
	MinSessions int64 `yaml:"min_sessions"`
	// Alerts names the routes (default every route).
	Alerts []string `yaml:"alerts"`
}

// Target is a server watched with check.
type Target struct {
	URL      string   `yaml:"url"`
	Interval Duration `yaml:"interval"`
	Depth    string   `yaml:"depth"`
	Alerts   []string `yaml:"alerts"`

	target starttls.Target
}

// Domain is a mail domain watched with mail.
type Domain struct {
	Domain   string   `yaml:"domain"`
	Interval Duration `yaml:"interval"`
	Alerts   []string `yaml:"alerts"`
}

// Route is where alerts go: a webhook, mail, or both.
type Route struct {
	Name        string  `yaml:"name"`
	Webhook     string  `yaml:"webhook"`
	Mail        *MailTo `yaml:"mail"`
	MinSeverity string  `yaml:"min_severity"`
	minSeverity check.Severity
}

// MailTo sends alerts through an SMTP server with STARTTLS required and
// the certificate verified.
type MailTo struct {
	Server       string   `yaml:"server"` // smtp://host:25 or submission://host:587
	From         string   `yaml:"from"`
	To           []string `yaml:"to"`
	Username     string   `yaml:"username"`
	PasswordFile string   `yaml:"password_file"`
	CA           string   `yaml:"ca"`

	server starttls.Target
}

// Duration is a time.Duration written as "5m", "90s".
type Duration time.Duration

// UnmarshalYAML reads a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a duration (write e.g. 90s, 5m, 1h)", n.Line, n.Value)}}
	}
	*d = Duration(v)
	return nil
}

// D is the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// ConfigError is a refused configuration: the line and the field.
type ConfigError struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

// LoadConfig reads and validates a configuration file.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, b)
}

// ParseConfig parses and validates a configuration; name is used in
// errors. Unknown fields are errors, so are bad values: each error names
// its line and field.
func ParseConfig(name string, b []byte) (*Config, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &ConfigError{File: name, Line: 1, Field: "(document)", Msg: "empty configuration"}
		}
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	v := validator{file: name, root: &root}
	c.defaults()
	c.validate(&v)
	if v.err != nil {
		return nil, v.err
	}
	return &c, nil
}

// validator records the first error with the line of the field in the
// YAML tree.
type validator struct {
	file string
	root *yaml.Node
	err  *ConfigError
}

// fail records msg for the field at path (mapping keys and sequence
// indexes).
func (v *validator) fail(msg string, path ...any) {
	if v.err != nil {
		return
	}
	var names []string
	for _, p := range path {
		switch p := p.(type) {
		case string:
			names = append(names, p)
		case int:
			names[len(names)-1] += "[" + strconv.Itoa(p) + "]"
		}
	}
	v.err = &ConfigError{File: v.file, Line: lineOf(v.root, path...), Field: strings.Join(names, "."), Msg: msg}
}

// lineOf walks the YAML tree to the deepest node of path that exists.
func lineOf(n *yaml.Node, path ...any) int {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		var next *yaml.Node
		switch p := p.(type) {
		case string:
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == p {
						next = n.Content[i+1]
						line = n.Content[i].Line
					}
				}
			}
		case int:
			if n.Kind == yaml.SequenceNode && p < len(n.Content) {
				next = n.Content[p]
				line = next.Line
			}
		}
		if next == nil {
			return line
		}
		n = next
	}
	return line
}

func (c *Config) defaults() {
	if c.DB == "" {
		c.DB = "watch.db"
	}
	if c.Interval == 0 {
		c.Interval = Duration(5 * time.Minute)
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Timeout == 0 {
		c.Timeout = Duration(10 * time.Second)
	}
	if c.Depth == "" {
		c.Depth = check.Quick
	}
	if c.SMTPPort == 0 {
		c.SMTPPort = 25
	}
	if c.HTTPSPort == 0 {
		c.HTTPSPort = 443
	}
	if c.UnreachableAfter == 0 {
		c.UnreachableAfter = 3
	}
	if c.ExpiryDays == nil {
		c.ExpiryDays = []int{30, 14, 7, 1}
	}
	if c.Buffer == 0 {
		c.Buffer = 10000
	}
	if c.GroupWindow == 0 {
		c.GroupWindow = Duration(30 * time.Second)
	}
	if c.Jitter == 0 {
		c.Jitter = 0.1
	}
	if c.TLSRPT.FailureRate == 0 {
		c.TLSRPT.FailureRate = 0.05
	}
	if c.TLSRPT.MinSessions == 0 {
		c.TLSRPT.MinSessions = 10
	}
}

func validDepth(d string) bool { return d == check.Quick || d == check.Session || d == check.Full }

func (c *Config) validate(v *validator) {
	if c.Interval.D() < time.Second {
		v.fail("must be at least 1s", "interval")
	}
	if c.Jitter < 0 || c.Jitter > 0.5 {
		v.fail("must be between 0 and 0.5 (a fraction of the interval)", "jitter")
	}
	if c.Concurrency < 1 || c.Concurrency > 10000 {
		v.fail("must be 1..10000", "concurrency")
	}
	if c.Rate < 0 {
		v.fail("must not be negative", "rate")
	}
	if c.PerSubnet < 0 {
		v.fail("must not be negative", "per_subnet")
	}
	if !validDepth(c.Depth) {
		v.fail(fmt.Sprintf("%q: want quick, session or full", c.Depth), "depth")
	}
	if c.SMTPPort < 1 || c.SMTPPort > 65535 {
		v.fail("must be 1..65535", "smtp_port")
	}
	if c.HTTPSPort < 1 || c.HTTPSPort > 65535 {
		v.fail("must be 1..65535", "https_port")
	}
	if c.UnreachableAfter < 1 {
		v.fail("must be at least 1", "unreachable_after")
	}
	if c.Retention != 0 && c.Retention.D() < 24*time.Hour {
		v.fail("must be at least 24h (or 0: keep everything)", "retention")
	}
	if c.Buffer < 1 {
		v.fail("must be at least 1", "buffer")
	}
	for i, d := range c.ExpiryDays {
		if d < 0 || d > 3650 {
			v.fail("days must be 0..3650", "expiry_days", i)
		}
	}
	if c.Resolver != "" {
		if r, err := mail.NormalizeResolver(c.Resolver); err != nil {
			v.fail(err.Error(), "resolver")
		} else {
			c.Resolver = r
		}
	}
	routes := map[string]bool{}
	for i := range c.Alerts {
		c.Alerts[i].validate(v, i, routes)
	}
	if r := c.TLSRPT.FailureRate; r < 0 || r > 1 {
		v.fail("must be a fraction between 0 and 1 (0.05 = 5 %)", "tlsrpt", "failure_rate")
	}
	if c.TLSRPT.MinSessions < 0 {
		v.fail("must not be negative", "tlsrpt", "min_sessions")
	}
	for j, n := range c.TLSRPT.Alerts {
		if !routes[n] {
			v.fail(fmt.Sprintf("no alert route named %q", n), "tlsrpt", "alerts", j)
		}
	}
	seen := map[string]bool{}
	for i := range c.Targets {
		t := &c.Targets[i]
		tg, err := starttls.ParseTarget(t.URL, "")
		if err != nil {
			v.fail(err.Error(), "targets", i, "url")
		}
		t.target = tg
		if seen[tg.String()] {
			v.fail("listed twice", "targets", i, "url")
		}
		seen[tg.String()] = true
		if t.Depth != "" && !validDepth(t.Depth) {
			v.fail(fmt.Sprintf("%q: want quick, session or full", t.Depth), "targets", i, "depth")
		}
		if t.Interval != 0 && t.Interval.D() < time.Second {
			v.fail("must be at least 1s", "targets", i, "interval")
		}
		checkRoutes(v, routes, t.Alerts, "targets", i)
	}
	for i := range c.Domains {
		d := &c.Domains[i]
		n, err := mail.NormalizeDomain(d.Domain)
		if err != nil {
			v.fail(err.Error(), "domains", i, "domain")
		}
		d.Domain = n
		if seen["domain:"+n] {
			v.fail("listed twice", "domains", i, "domain")
		}
		seen["domain:"+n] = true
		if d.Interval != 0 && d.Interval.D() < time.Second {
			v.fail("must be at least 1s", "domains", i, "interval")
		}
		checkRoutes(v, routes, d.Alerts, "domains", i)
	}
}

func checkRoutes(v *validator, routes map[string]bool, names []string, list string, i int) {
	for j, n := range names {
		if !routes[n] {
			v.fail(fmt.Sprintf("no alert route named %q", n), list, i, "alerts", j)
		}
	}
}

func (r *Route) validate(v *validator, i int, routes map[string]bool) {
	if r.Name == "" {
		v.fail("a route needs a name", "alerts", i, "name")
	}
	if routes[r.Name] {
		v.fail(fmt.Sprintf("route %q defined twice", r.Name), "alerts", i, "name")
	}
	routes[r.Name] = true
	if r.Webhook == "" && r.Mail == nil {
		v.fail("a route needs a webhook or mail", "alerts", i)
	}
	if r.Webhook != "" {
		u, err := url.Parse(r.Webhook)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.fail("want an http:// or https:// URL", "alerts", i, "webhook")
		}
	}
	if r.MinSeverity == "" {
		r.MinSeverity = "info"
	}
	sev, err := check.ParseSeverity(r.MinSeverity)
	if err != nil {
		v.fail(err.Error(), "alerts", i, "min_severity")
	}
	r.minSeverity = sev
	if m := r.Mail; m != nil {
		t, err := starttls.ParseTarget(m.Server, "")
		switch {
		case err != nil:
			v.fail(err.Error(), "alerts", i, "mail", "server")
		case t.Protocol != starttls.SMTP && t.Protocol != starttls.Submission:
			v.fail("want smtp:// or submission://", "alerts", i, "mail", "server")
		}
		m.server = t
		if !strings.Contains(m.From, "@") {
			v.fail("want an address", "alerts", i, "mail", "from")
		}
		if len(m.To) == 0 {
			v.fail("at least one recipient", "alerts", i, "mail", "to")
		}
		for j, to := range m.To {
			if !strings.Contains(to, "@") || strings.ContainsAny(to, "<>\r\n ") {
				v.fail("want an address", "alerts", i, "mail", "to", j)
			}
		}
		if m.Username != "" && m.PasswordFile == "" {
			v.fail("username without password_file", "alerts", i, "mail", "password_file")
		}
		if strings.ContainsAny(m.From, "<>\r\n ") {
			v.fail("want an address", "alerts", i, "mail", "from")
		}
	}
}

// Subjects lists the subject keys of the configuration.
func (c *Config) Subjects() []string {
	var out []string
	for _, t := range c.Targets {
		out = append(out, TargetKey(t.target))
	}
	for _, d := range c.Domains {
		out = append(out, DomainKey(d.Domain))
	}
	return out
}

// TargetKey and DomainKey name subjects in the store.
func TargetKey(t starttls.Target) string { return "target:" + t.String() }

// DomainKey is the store key of a mail domain.
func DomainKey(d string) string { return "domain:" + d }
