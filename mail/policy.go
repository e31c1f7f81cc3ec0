package mail

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Parsers for what a domain publishes: the _mta-sts and _smtp._tls TXT
// records and the MTA-STS policy file. They take untrusted input, never
// panic, and are fuzzed (fuzz_test.go).

// MTA-STS modes (RFC 8461 §5).
const (
	ModeEnforce = "enforce"
	ModeTesting = "testing"
	ModeNone    = "none"
)

// MaxMaxAge is the largest max_age a policy may have (RFC 8461 §3.2): a year.
const MaxMaxAge = 31557600

// MaxPolicySize bounds the policy body (RFC 8461 §3.3 suggests 64 KiB).
const MaxPolicySize = 64 << 10

// STSRecord is a parsed _mta-sts TXT record (RFC 8461 §3.1).
type STSRecord struct {
	ID         string            `json:"id"`
	Extensions map[string]string `json:"extensions,omitempty"`
}

// isSTSCandidate says whether a TXT string is an MTA-STS record at all:
// others are discarded before counting (RFC 8461 §3.1).
func isSTSCandidate(s string) bool {
	return hasVersion(s, "v=STSv1")
}

// hasVersion reports whether s begins with v, followed by the end, a
// delimiter or white space.
func hasVersion(s, v string) bool {
	if !strings.HasPrefix(s, v) {
		return false
	}
	rest := s[len(v):]
	return rest == "" || rest[0] == ';' || rest[0] == ' ' || rest[0] == '\t'
}

// splitFields splits "a=b; c=d;" at the ';' delimiters with optional white
// space around them; the last delimiter is optional.
func splitFields(s string) []string {
	parts := strings.Split(s, ";")
	if len(parts) > 1 && strings.Trim(parts[len(parts)-1], " \t") == "" {
		parts = parts[:len(parts)-1]
	}
	for i := range parts {
		parts[i] = strings.Trim(parts[i], " \t")
	}
	return parts
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// validExtName: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".").
func validExtName(n string) bool {
	if n == "" || len(n) > 32 || !isAlnum(n[0]) {
		return false
	}
	for i := 1; i < len(n); i++ {
		if c := n[i]; !isAlnum(c) && c != '_' && c != '-' && c != '.' {
			return false
		}
	}
	return true
}

// validExtValue: 1*(%x21-3A / %x3C / %x3E-7E).
func validExtValue(v string) bool {
	if v == "" {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c < 0x21 || c > 0x7e || c == ';' || c == '=' {
			return false
		}
	}
	return true
}

// ParseSTSRecord parses one _mta-sts TXT record strictly.
func ParseSTSRecord(s string) (*STSRecord, error) {
	if !isSTSCandidate(s) {
		return nil, errors.New(`the record does not begin with "v=STSv1"`)
	}
	fields := splitFields(s)
	if fields[0] != "v=STSv1" {
		return nil, fmt.Errorf("bad version field %q", fields[0])
	}
	r := &STSRecord{}
	seenID := false
	for _, f := range fields[1:] {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("field %q has no '='", f)
		}
		switch name {
		case "id":
			if seenID {
				return nil, errors.New("id appears twice")
			}
			seenID = true
			if value == "" || len(value) > 32 {
				return nil, fmt.Errorf("id %q must be 1 to 32 letters or digits", value)
			}
			for i := 0; i < len(value); i++ {
				if !isAlnum(value[i]) {
					return nil, fmt.Errorf("id %q must be 1 to 32 letters or digits", value)
				}
			}
			r.ID = value
		default:
			if !validExtName(name) || !validExtValue(value) {
				return nil, fmt.Errorf("malformed field %q", f)
			}
			if r.Extensions == nil {
				r.Extensions = map[string]string{}
			}
			r.Extensions[name] = value
		}
	}
	if !seenID {
		return nil, errors.New("no id field")
	}
	return r, nil
}

// Policy is a parsed MTA-STS policy (RFC 8461 §3.2).
type Policy struct {
	Version string   `json:"version"`
	Mode    string   `json:"mode"`
	MX      []string `json:"mx"`
	MaxAge  int64    `json:"max_age"`
	// Warnings are departures from the grammar that senders tolerate
	// (duplicated fields, blank lines).
	Warnings []string `json:"warnings,omitempty"`
}

// ParsePolicy parses a policy body strictly: every line must be a field,
// version must be STSv1, mode one of enforce, testing, none (other letter
// cases are accepted with a warning, as RFC 5234 makes them valid), max_age a
// number up to a year, and mx patterns valid domain names (A-labels) with
// an optional "*." prefix; at least one mx unless mode is none.
func ParsePolicy(body []byte) (*Policy, error) {
	if len(body) > MaxPolicySize {
		return nil, fmt.Errorf("policy is %d bytes, more than %d", len(body), MaxPolicySize)
	}
	text := string(body)
	lines := strings.Split(text, "\n")
	if lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	p := &Policy{}
	seen := map[string]bool{}
	var errs []string
	for i, line := range lines {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if strings.Trim(line, " \t") == "" {
			p.Warnings = append(p.Warnings, fmt.Sprintf("line %d is blank", n))
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			errs = append(errs, fmt.Sprintf("line %d %q is not \"name: value\"", n, clip(line)))
			continue
		}
		value = strings.Trim(value, " \t")
		if !validExtName(name) {
			errs = append(errs, fmt.Sprintf("line %d: bad field name %q", n, clip(name)))
			continue
		}
		key := strings.ToLower(name)
		if key != name {
			p.Warnings = append(p.Warnings, fmt.Sprintf("line %d: field name %q is not lower-case", n, clip(name)))
		}
		if key != "mx" && seen[key] {
			p.Warnings = append(p.Warnings, fmt.Sprintf("line %d: %s repeated; the first one counts", n, key))
			continue
		}
		seen[key] = true
		switch key {
		case "version":
			// ABNF literals are case-insensitive (RFC 5234 §2.3), but
			// senders may compare exactly: accept and warn.
			p.Version = value
			switch {
			case value == "STSv1":
			case strings.EqualFold(value, "STSv1"):
				p.Version = "STSv1"
				p.Warnings = append(p.Warnings, fmt.Sprintf("line %d: version %q is not written STSv1", n, value))
			default:
				errs = append(errs, fmt.Sprintf("line %d: version %q, want STSv1", n, clip(value)))
			}
		case "mode":
			p.Mode = strings.ToLower(value)
			if p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone {
				p.Mode = value
				errs = append(errs, fmt.Sprintf("line %d: mode %q, want enforce, testing or none", n, clip(value)))
			} else if p.Mode != value {
				p.Warnings = append(p.Warnings, fmt.Sprintf("line %d: mode %q is not lower-case", n, value))
			}
		case "max_age":
			v, err := parseMaxAge(value)
			if err != nil {
				errs = append(errs, fmt.Sprintf("line %d: %v", n, err))
			}
			p.MaxAge = v
		case "mx":
			if err := validMXPattern(value); err != nil {
				errs = append(errs, fmt.Sprintf("line %d: mx %q: %v", n, clip(value), err))
				continue
			}
			p.MX = append(p.MX, strings.ToLower(value))
		default:
			if value != "" && !validPolicyValue(value) {
				errs = append(errs, fmt.Sprintf("line %d: bad value for %s", n, clip(name)))
			}
		}
	}
	for _, req := range []string{"version", "mode", "max_age"} {
		if !seen[req] {
			errs = append(errs, "no "+req+" field")
		}
	}
	if seen["mode"] && p.Mode != ModeNone && len(p.MX) == 0 && !seen["mx"] {
		errs = append(errs, "no mx field (required unless mode is none)")
	}
	if len(errs) > 0 {
		return p, errors.New(strings.Join(errs, "; "))
	}
	return p, nil
}

func parseMaxAge(v string) (int64, error) {
	if v == "" || len(v) > 10 {
		return 0, fmt.Errorf("max_age %q must be 1 to 10 digits", clip(v))
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, fmt.Errorf("max_age %q is not a number", clip(v))
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("max_age %q: %v", clip(v), err)
	}
	if n > MaxMaxAge {
		return n, fmt.Errorf("max_age %d is more than %d (a year)", n, MaxMaxAge)
	}
	return n, nil
}

// validPolicyValue: VCHAR *( *WSP VCHAR) and UTF-8 (sts-policy-vchar).
func validPolicyValue(v string) bool {
	for _, r := range v {
		if r < 0x20 && r != '\t' || r == 0x7f || r == 0xfffd {
			return false
		}
	}
	return true
}

// validMXPattern: ["*."] Domain (RFC 5321 Domain: LDH labels, A-labels).
func validMXPattern(v string) error {
	d := strings.TrimPrefix(v, "*.")
	if d == "" {
		return errors.New("empty domain")
	}
	if len(d) > 253 {
		return errors.New("longer than 253 characters")
	}
	if strings.HasSuffix(d, ".") {
		return errors.New("trailing dot")
	}
	for _, label := range strings.Split(d, ".") {
		if label == "" || len(label) > 63 {
			return errors.New("empty or over-long label")
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("label %q begins or ends with '-'", label)
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !isAlnum(c) && c != '-' {
				if c >= 0x80 {
					return errors.New("not ASCII: mx patterns use A-labels (xn--)")
				}
				return fmt.Errorf("label %q has %q", label, c)
			}
		}
	}
	return nil
}

// MatchMX reports whether an MX host name matches a policy pattern (RFC
// 8461 §4.1): equal ignoring case, or "*.rest" where the host is one more
// label in front of rest.
func MatchMX(pattern, host string) bool {
	pattern = strings.ToLower(strings.TrimSuffix(pattern, "."))
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if pattern == "" || host == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, tail, ok := strings.Cut(host, ".")
		return ok && label != "" && tail == rest
	}
	return pattern == host
}

// Matches reports whether host matches any of the policy's patterns and
// which one.
func (p *Policy) Matches(host string) (string, bool) {
	for _, pat := range p.MX {
		if MatchMX(pat, host) {
			return pat, true
		}
	}
	return "", false
}

// TLSRPTRecord is a parsed _smtp._tls TXT record (RFC 8460 §3).
type TLSRPTRecord struct {
	RUA        []string          `json:"rua"`
	Extensions map[string]string `json:"extensions,omitempty"`
}

// ParseTLSRPTRecord parses one _smtp._tls TXT record strictly.
func ParseTLSRPTRecord(s string) (*TLSRPTRecord, error) {
	if !hasVersion(s, "v=TLSRPTv1") {
		return nil, errors.New(`the record does not begin with "v=TLSRPTv1"`)
	}
	fields := splitFields(s)
	if fields[0] != "v=TLSRPTv1" {
		return nil, fmt.Errorf("bad version field %q", fields[0])
	}
	r := &TLSRPTRecord{}
	seenRUA := false
	for _, f := range fields[1:] {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return nil, fmt.Errorf("field %q has no '='", clip(f))
		}
		switch name {
		case "rua":
			if seenRUA {
				return nil, errors.New("rua appears twice")
			}
			seenRUA = true
			for _, u := range strings.Split(value, ",") {
				u = strings.Trim(u, " \t")
				if err := validRUA(u); err != nil {
					return nil, err
				}
				r.RUA = append(r.RUA, u)
			}
		default:
			if !validExtName(name) || !validExtValue(value) {
				return nil, fmt.Errorf("malformed field %q", clip(f))
			}
			if r.Extensions == nil {
				r.Extensions = map[string]string{}
			}
			r.Extensions[name] = value
		}
	}
	if !seenRUA {
		return nil, errors.New("no rua field")
	}
	return r, nil
}

func validRUA(u string) error {
	scheme, rest, ok := strings.Cut(u, ":")
	if !ok || rest == "" {
		return fmt.Errorf("rua %q is not a URI", clip(u))
	}
	for i := 0; i < len(u); i++ {
		if u[i] <= 0x20 || u[i] >= 0x7f {
			return fmt.Errorf("rua %q has a space or a non-ASCII byte", clip(u))
		}
	}
	switch strings.ToLower(scheme) {
	case "mailto":
		local, domain, ok := strings.Cut(rest, "@")
		if !ok || local == "" || domain == "" {
			return fmt.Errorf("rua %q is not a mailto: address", clip(u))
		}
	case "https":
		if !strings.HasPrefix(rest, "//") || len(rest) < 3 {
			return fmt.Errorf("rua %q is not an https: URL", clip(u))
		}
	default:
		return fmt.Errorf("rua %q: only mailto: and https: are defined", clip(u))
	}
	return nil
}

// clip shortens peer text for error messages.
func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}
