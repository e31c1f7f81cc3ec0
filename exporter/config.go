// Package exporter is a Prometheus exporter in the multi-target pattern of
// blackbox_exporter: Prometheus asks /probe?target=URL&module=NAME, the
// exporter runs one check of that target with the module's settings and
// answers the result as metrics from a registry made for that probe.
// /metrics describes the exporter itself.
package exporter

import (
	"bytes"
	"crypto/x509"
	"fmt"
	"os"
	"sort"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// Module is a named set of check settings a probe request selects.
type Module struct {
	// Depth is quick, full or session (default quick: a scrape every
	// minute should not enumerate every cipher suite).
	Depth string `yaml:"depth"`
	// Timeout bounds each phase of the check (default 10s); the whole
	// probe is bounded by the scrape timeout as well.
	Timeout time.Duration `yaml:"timeout"`
	// CAFile holds PEM CA certificates trusted besides the system pool.
	CAFile string `yaml:"ca_file"`
	// ServerName is sent as SNI and verified (default: the target host).
	ServerName string `yaml:"servername"`
	// FailOn, when set, makes starttls_probe_success 0 when a finding has
	// this severity or higher; empty means findings do not fail a probe.
	FailOn string `yaml:"fail_on"`
	// Protocol is used for targets written host:port, without a scheme.
	Protocol string `yaml:"protocol"`
	// LocalName is the EHLO name (default localhost).
	LocalName string `yaml:"local_name"`

	roots     *x509.CertPool
	threshold check.Severity
}

// Config is the exporter's configuration file.
type Config struct {
	Modules map[string]*Module `yaml:"modules"`
}

// DefaultConfig is used when no file is given: one module per depth,
// named after it, and findings never fail a probe.
func DefaultConfig() *Config {
	c := &Config{Modules: map[string]*Module{
		check.Quick:   {Depth: check.Quick},
		check.Full:    {Depth: check.Full, Timeout: 10 * time.Second},
		check.Session: {Depth: check.Session},
	}}
	if err := c.prepare(); err != nil {
		panic(err) // the defaults are constants: a failure is a bug here
	}
	return c
}

// LoadConfig reads and validates a YAML configuration; unknown keys are
// errors, so that a typo does not silently fall back to a default.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseConfig(b)
}

// ParseConfig parses and validates a YAML configuration.
func ParseConfig(b []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("exporter config: %w", err)
	}
	if len(c.Modules) == 0 {
		return nil, fmt.Errorf("exporter config: no modules")
	}
	if err := c.prepare(); err != nil {
		return nil, err
	}
	return &c, nil
}

// prepare fills defaults, checks every value and loads CA files once, so
// that a probe never fails on configuration.
func (c *Config) prepare() error {
	for name, m := range c.Modules {
		if m == nil {
			m = &Module{}
			c.Modules[name] = m
		}
		if m.Depth == "" {
			m.Depth = check.Quick
		}
		switch m.Depth {
		case check.Quick, check.Full, check.Session:
		default:
			return fmt.Errorf("module %s: depth %q: want quick, full or session", name, m.Depth)
		}
		if m.Timeout < 0 {
			return fmt.Errorf("module %s: negative timeout", name)
		}
		if m.Timeout == 0 {
			m.Timeout = 10 * time.Second
		}
		if m.FailOn != "" {
			s, err := check.ParseSeverity(m.FailOn)
			if err != nil {
				return fmt.Errorf("module %s: fail_on: %w", name, err)
			}
			m.threshold = s
		}
		if m.Protocol != "" {
			if _, err := starttls.Lookup(starttls.Protocol(m.Protocol)); err != nil {
				return fmt.Errorf("module %s: protocol: %w", name, err)
			}
		}
		if m.CAFile != "" {
			pem, err := os.ReadFile(m.CAFile)
			if err != nil {
				return fmt.Errorf("module %s: ca_file: %w", name, err)
			}
			pool, err := x509.SystemCertPool()
			if err != nil || pool == nil {
				pool = x509.NewCertPool()
			}
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("module %s: ca_file %s: no PEM certificate", name, m.CAFile)
			}
			m.roots = pool
		}
	}
	return nil
}

// Names lists the modules, sorted.
func (c *Config) Names() []string {
	var n []string
	for k := range c.Modules {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}
