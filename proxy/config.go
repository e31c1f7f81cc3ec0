package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/starttls-go/starttls"
)

// Spec is one listener as written by a user (flags or a file entry);
// Build turns it into a Listener, loading certificates and CAs.
type Spec struct {
	Name          string        `yaml:"name"`
	Mode          string        `yaml:"mode"`
	Proto         string        `yaml:"proto"`
	Listen        string        `yaml:"listen"`
	Backend       string        `yaml:"backend"`
	Cert          string        `yaml:"cert"`
	Key           string        `yaml:"key"`
	Policy        string        `yaml:"policy"`
	Injection     string        `yaml:"injection"`
	Hostname      string        `yaml:"hostname"`
	Capabilities  []string      `yaml:"capabilities"`
	ProxyProtocol bool          `yaml:"proxy_protocol"`
	CA            string        `yaml:"ca"`
	ServerName    string        `yaml:"servername"`
	Pins          []string      `yaml:"pins"`
	LocalName     string        `yaml:"local_name"`
	MaxConns      int           `yaml:"max_connections"`
	MaxPerIP      int           `yaml:"max_per_ip"`
	PreTLS        time.Duration `yaml:"pre_tls_timeout"`
	Handshake     time.Duration `yaml:"handshake_timeout"`
	Connect       time.Duration `yaml:"connect_timeout"`
	Idle          time.Duration `yaml:"idle_timeout"`
}

// FieldError is a Spec field that does not hold.
type FieldError struct {
	Field string // the yaml key
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Build checks the spec and makes the Listener. Relative file names are
// taken from dir. certs shares certificate stores between listeners that
// name the same files (nil: no sharing).
func (sp Spec) Build(dir string, certs map[[2]string]*CertStore) (Listener, error) {
	path := func(p string) string {
		if p == "" || filepath.IsAbs(p) || dir == "" {
			return p
		}
		return filepath.Join(dir, p)
	}
	l := Listener{
		Name: sp.Name, Mode: Mode(strings.ToLower(sp.Mode)), Protocol: starttls.Protocol(strings.ToLower(sp.Proto)),
		Listen: sp.Listen, Backend: sp.Backend, Hostname: sp.Hostname, Capabilities: sp.Capabilities,
		ProxyProtocol: sp.ProxyProtocol, LocalName: sp.LocalName, MaxConns: sp.MaxConns, MaxPerIP: sp.MaxPerIP,
		Timeouts: Timeouts{PreTLS: sp.PreTLS, Handshake: sp.Handshake, Connect: sp.Connect, Idle: sp.Idle},
	}
	if sp.Proto == "" {
		return l, fieldErr("proto", "missing (one of %s)", SupportedProtocols())
	}
	info, err := starttls.Lookup(l.Protocol)
	if err != nil || appFor(info.Base) == nil {
		return l, fieldErr("proto", "%q: want one of %s", sp.Proto, SupportedProtocols())
	}
	switch l.Mode {
	case "":
		if info.Implicit {
			l.Mode = Implicit
		} else {
			return l, fieldErr("mode", "missing (terminate, implicit or originate)")
		}
	case Terminate, Implicit, Originate:
	default:
		return l, fieldErr("mode", "%q: want terminate, implicit or originate", sp.Mode)
	}
	if l.Listen == "" {
		return l, fieldErr("listen", "missing (host:port)")
	}
	if _, _, err := splitHostPort(l.Listen); err != nil {
		return l, fieldErr("listen", "%q: %v", l.Listen, err)
	}
	if l.Backend == "" {
		return l, fieldErr("backend", "missing (host:port)")
	}
	if _, _, err := splitHostPort(l.Backend); err != nil {
		return l, fieldErr("backend", "%q: %v", l.Backend, err)
	}
	switch strings.ToLower(sp.Policy) {
	case "", "required":
	case "optional":
		l.Policy = starttls.Optional
	default:
		return l, fieldErr("policy", "%q: want required or optional", sp.Policy)
	}
	switch strings.ToLower(sp.Injection) {
	case "", "close":
	case "discard":
		l.Injection = starttls.Discard
	default:
		return l, fieldErr("injection", "%q: want close or discard", sp.Injection)
	}
	for _, f := range []struct {
		name string
		d    time.Duration
	}{{"pre_tls_timeout", sp.PreTLS}, {"handshake_timeout", sp.Handshake}, {"connect_timeout", sp.Connect}, {"idle_timeout", sp.Idle}} {
		if f.d < 0 {
			return l, fieldErr(f.name, "negative duration %s", f.d)
		}
	}
	if sp.MaxConns < 0 {
		return l, fieldErr("max_connections", "negative")
	}
	if sp.MaxPerIP < 0 {
		return l, fieldErr("max_per_ip", "negative")
	}
	switch l.Mode {
	case Terminate, Implicit:
		if sp.Cert == "" || sp.Key == "" {
			f := "cert"
			if sp.Cert != "" {
				f = "key"
			}
			return l, fieldErr(f, "mode %s needs cert and key (PEM files)", l.Mode)
		}
		if sp.CA != "" || sp.ServerName != "" || len(sp.Pins) > 0 {
			return l, fieldErr("ca", "ca, servername and pins are for mode originate")
		}
		k := [2]string{path(sp.Cert), path(sp.Key)}
		cs := certs[k]
		if cs == nil {
			if cs, err = LoadCertStore(k[0], k[1]); err != nil {
				return l, &FieldError{Field: "cert", Err: err}
			}
			if certs != nil {
				certs[k] = cs
			}
		}
		l.Certificates = cs
	case Originate:
		if sp.Cert != "" || sp.Key != "" {
			return l, fieldErr("cert", "cert and key are for modes terminate and implicit (originate verifies the server: ca, servername)")
		}
		if sp.ProxyProtocol {
			return l, fieldErr("proxy_protocol", "not available in mode originate")
		}
		tc := &tls.Config{ServerName: sp.ServerName}
		if sp.CA != "" {
			pem, err := os.ReadFile(path(sp.CA))
			if err != nil {
				return l, &FieldError{Field: "ca", Err: err}
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return l, fieldErr("ca", "%s: no PEM certificate", sp.CA)
			}
			tc.RootCAs = pool
		}
		for _, p := range sp.Pins {
			pin, err := ParsePin(p)
			if err != nil {
				return l, &FieldError{Field: "pins", Err: err}
			}
			l.Pins = append(l.Pins, pin)
		}
		l.ClientTLS = tc
	}
	if err := Validate(l); err != nil {
		return l, err
	}
	return l, nil
}

func splitHostPort(a string) (string, string, error) {
	h, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", "", err
	}
	if p == "" {
		return "", "", errors.New("missing port")
	}
	return h, p, nil
}

// File is a parsed configuration file.
type File struct {
	Path      string        `yaml:"-"`
	LogFormat string        `yaml:"log_format"`
	LogLevel  string        `yaml:"log_level"`
	Metrics   string        `yaml:"metrics"`
	Drain     time.Duration `yaml:"drain_timeout"`
	MaxConns  int           `yaml:"max_connections"`
	Listeners []Listener    `yaml:"-"`
	// Certificates are the stores of every listener, for reloading.
	Certificates []*CertStore `yaml:"-"`
}

// LoadFile reads and checks a YAML configuration file; every error names
// the file and line.
func LoadFile(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParseFile(path, data)
}

// ParseFile is LoadFile on bytes already read; name is used in errors and
// for relative paths.
func ParseFile(name string, data []byte) (*File, error) {
	f := &File{Path: name}
	at := func(n *yaml.Node, format string, args ...any) error {
		return fmt.Errorf("%s:%d: %s", name, n.Line, fmt.Sprintf(format, args...))
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err) // yaml's message has "line N"
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: empty configuration", name)
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, at(root, "the top level must be a mapping (log_format, metrics, listeners, ...)")
	}
	if err := checkKeys(root, reflect.TypeFor[File](), "listeners"); err != nil {
		return nil, fmt.Errorf("%s:%w", name, err)
	}
	var listeners *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value == "listeners" {
			listeners = root.Content[i+1]
		}
	}
	if err := root.Decode(f); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	f.Path = name
	switch f.LogFormat {
	case "", "text", "json":
	default:
		return nil, at(valueNode(root, "log_format"), "log_format %q: want text or json", f.LogFormat)
	}
	switch f.LogLevel {
	case "", "debug", "info", "warn", "error":
	default:
		return nil, at(valueNode(root, "log_level"), "log_level %q: want debug, info, warn or error", f.LogLevel)
	}
	if f.Drain < 0 || f.MaxConns < 0 {
		return nil, at(root, "drain_timeout and max_connections must not be negative")
	}
	if listeners == nil || listeners.Kind != yaml.SequenceNode || len(listeners.Content) == 0 {
		n := root
		if listeners != nil {
			n = listeners
		}
		return nil, at(n, "listeners: want a list of at least one listener")
	}
	dir := filepath.Dir(name)
	certs := map[[2]string]*CertStore{}
	names := map[string]int{}
	addrs := map[string]int{}
	for _, ln := range listeners.Content {
		if ln.Kind != yaml.MappingNode {
			return nil, at(ln, "a listener must be a mapping (mode, proto, listen, backend, ...)")
		}
		if err := checkKeys(ln, reflect.TypeFor[Spec]()); err != nil {
			return nil, fmt.Errorf("%s:%w", name, err)
		}
		var sp Spec
		if err := ln.Decode(&sp); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		l, err := sp.Build(dir, certs)
		if err != nil {
			n := ln
			var fe *FieldError
			if errors.As(err, &fe) {
				if v := valueNode(ln, fe.Field); v != nil {
					n = v
				}
			}
			label := sp.Name
			if label == "" {
				label = sp.Listen
			}
			return nil, at(n, "listener %q: %v", label, err)
		}
		if l.Name == "" {
			l.Name = fmt.Sprintf("%s-%s-%s", l.Mode, l.Protocol, l.Listen)
		}
		if prev, dup := names[l.Name]; dup {
			return nil, at(ln, "listener name %q already used on line %d", l.Name, prev)
		}
		names[l.Name] = ln.Line
		if prev, dup := addrs[l.Listen]; dup && !strings.HasSuffix(l.Listen, ":0") {
			return nil, at(valueNode(ln, "listen"), "listen %s already used on line %d", l.Listen, prev)
		}
		addrs[l.Listen] = ln.Line
		f.Listeners = append(f.Listeners, l)
	}
	keys := make([][2]string, 0, len(certs))
	for k := range certs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	for _, k := range keys {
		f.Certificates = append(f.Certificates, certs[k])
	}
	return f, nil
}

// checkKeys rejects keys that are not yaml tags of t (or extra).
func checkKeys(m *yaml.Node, t reflect.Type, extra ...string) error {
	known := map[string]bool{}
	for _, e := range extra {
		known[e] = true
	}
	for i := 0; i < t.NumField(); i++ {
		tag, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if tag != "" && tag != "-" {
			known[tag] = true
		}
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if !known[k.Value] {
			var list []string
			for n := range known {
				list = append(list, n)
			}
			sort.Strings(list)
			return fmt.Errorf("%d: unknown key %q (known: %s)", k.Line, k.Value, strings.Join(list, ", "))
		}
	}
	return nil
}

// valueNode returns the value node of key in mapping m, or nil.
func valueNode(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
