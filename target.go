package starttls

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// Target is a server to talk to: a protocol and an address.
type Target struct {
	Protocol Protocol
	Host     string
	Port     int
}

// Addr is host:port.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

// String is the target as a URL, e.g. smtp://mx.example.com:25.
func (t Target) String() string { return string(t.Protocol) + "://" + t.Addr() }

// schemeAlias maps URL schemes that are not protocol names.
var schemeAlias = map[string]Protocol{
	"postgresql":    "postgres",
	"smtp+starttls": SMTP,
}

// ParseTarget reads "proto://host[:port]" or, with proto given,
// "host[:port]". A scheme wins over proto; the port defaults to the
// protocol's.
func ParseTarget(s string, proto Protocol) (Target, error) {
	s = strings.TrimSpace(s)
	if scheme, rest, ok := strings.Cut(s, "://"); ok {
		p := Protocol(strings.ToLower(scheme))
		if a, ok := schemeAlias[string(p)]; ok {
			p = a
		}
		u, err := url.Parse("x://" + rest)
		if err != nil {
			return Target{}, fmt.Errorf("bad target %q: %w", s, err)
		}
		if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return Target{}, fmt.Errorf("bad target %q: only scheme://host[:port] is understood", s)
		}
		proto, s = p, u.Host
	}
	if proto == "" {
		return Target{}, fmt.Errorf("target %q has no protocol: write it as smtp://%s or give --proto", s, s)
	}
	if lookupSpec(proto) == nil {
		return Target{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownProtocol, proto, joinProtocols())
	}
	host, port, err := SplitHostPort(s, proto)
	if err != nil {
		return Target{}, err
	}
	return Target{Protocol: lookupSpec(proto).name, Host: host, Port: port}, nil
}

func joinProtocols() string {
	var b []string
	for _, p := range Protocols() {
		b = append(b, string(p))
	}
	return strings.Join(b, ", ")
}
