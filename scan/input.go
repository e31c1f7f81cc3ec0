// Package scan runs the check over very many targets: a streaming input, a
// bounded worker pool with per-target deadlines, a token-bucket rate limit,
// a per-/24 politeness limit, cached concurrent DNS resolution, stable
// sharding, and sinks that write JSON lines, SQLite or PostgreSQL. Memory
// is O(concurrency), never O(targets): the input is read only as fast as
// workers take targets.
package scan

import (
	"bufio"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/starttls-go/starttls"
)

// MaxLine bounds one input line; longer lines are reported as bad input.
const MaxLine = 4096

// ParseLine reads one input line: "proto://host[:port]" or, with proto
// given, "host[:port]". Blank lines and lines starting with '#' are
// skipped (ok false, err nil); a trailing "# comment" is dropped.
func ParseLine(line string, proto starttls.Protocol) (t starttls.Target, ok bool, err error) {
	if i := strings.Index(line, "#"); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return starttls.Target{}, false, nil
	}
	if strings.ContainsAny(line, " \t\x00") {
		return starttls.Target{}, false, fmt.Errorf("bad target %q: one target per line", line)
	}
	t, err = starttls.ParseTarget(line, proto)
	if err != nil {
		return starttls.Target{}, false, err
	}
	if !validHost(t.Host) {
		return starttls.Target{}, false, fmt.Errorf("bad target %q: host %q is neither an IP address nor a DNS name", line, t.Host)
	}
	if t.Port <= 0 || t.Port > 65535 {
		return starttls.Target{}, false, fmt.Errorf("bad target %q: port out of range", line)
	}
	return t, true, nil
}

// validHost accepts IP addresses and DNS names (letters, digits, '-',
// '_' and dots, at most 253 bytes).
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	if ip, err := netip.ParseAddr(h); err == nil {
		// A zone names an interface of this machine: no use in a target
		// list, and keys with one do not parse back as URLs.
		return ip.Zone() == ""
	}
	for _, c := range []byte(h) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return !strings.HasPrefix(h, ".") && !strings.Contains(h, "..")
}

// ParseDomain reads one input line of an MX scan: a mail domain (a DNS
// name, not an address, a URL or host:port), returned lowercased without
// a trailing dot. Blank lines and comments are skipped as in ParseLine.
func ParseDomain(line string) (domain string, ok bool, err error) {
	if i := strings.Index(line, "#"); i >= 0 {
		line = line[:i]
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return "", false, nil
	}
	d := strings.ToLower(strings.TrimSuffix(line, "."))
	if !validHost(d) {
		return "", false, fmt.Errorf("bad domain %q: want a DNS name (no URL, port or spaces)", line)
	}
	if _, err := netip.ParseAddr(d); err == nil {
		return "", false, fmt.Errorf("bad domain %q: an address has no MX records", line)
	}
	return d, true, nil
}

// DomainKey is the key of a mail domain in an MX scan ("mx:example.org"):
// what --shard hashes and --resume looks up.
func DomainKey(domain string) string { return mxPrefix + domain }

const mxPrefix = "mx:"

// Key is the canonical string of a target: the identity used by sinks,
// --resume and sharding ("smtp://mx.example.org:25").
func Key(t starttls.Target) string { return t.String() }

// Shard selects a stable part of the targets: those whose key hashes to
// I modulo N. The zero value (N 0) selects everything.
type Shard struct{ I, N int }

// ParseShard reads "i/n" with 0 <= i < n.
func ParseShard(s string) (Shard, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(strings.TrimSpace(a))
	n, err2 := strconv.Atoi(strings.TrimSpace(b))
	if !ok || err1 != nil || err2 != nil || n < 1 || i < 0 || i >= n {
		return Shard{}, fmt.Errorf("bad shard %q: want i/n with 0 <= i < n", s)
	}
	return Shard{I: i, N: n}, nil
}

func (s Shard) String() string {
	if s.N == 0 {
		return "0/1"
	}
	return fmt.Sprintf("%d/%d", s.I, s.N)
}

// Contains reports whether key belongs to the shard. The hash is FNV-1a
// 64 of the key: stable across processes, machines and versions.
func (s Shard) Contains(key string) bool {
	if s.N <= 1 {
		return true
	}
	return ShardOf(key, s.N) == s.I
}

// ShardOf is the shard index of key among n shards.
func ShardOf(key string, n int) int {
	h := fnv.New64a()
	_, _ = io.WriteString(h, key)
	return int(h.Sum64() % uint64(n))
}

// Line is one line of input: a target (or, from a domain reader, a mail
// domain), or an error that names the line.
type Line struct {
	N      int // 1-based line number
	Target starttls.Target
	Domain string // a domain reader's line; Target is then zero
	Err    error
}

// Key is the line's identity: Key(Target), or DomainKey(Domain).
func (l Line) Key() string {
	if l.Domain != "" {
		return DomainKey(l.Domain)
	}
	return Key(l.Target)
}

// Reader streams targets from r, one a line, without holding more than
// one line in memory.
type Reader struct {
	s       *bufio.Reader
	proto   starttls.Protocol
	domains bool
	n       int
}

// NewReader reads targets from r; proto applies to lines without a scheme.
func NewReader(r io.Reader, proto starttls.Protocol) *Reader {
	return &Reader{s: bufio.NewReaderSize(r, 64<<10), proto: proto}
}

// NewDomainReader reads mail domains from r, one a line (ParseDomain),
// for an MX scan (Options.MX).
func NewDomainReader(r io.Reader) *Reader {
	return &Reader{s: bufio.NewReaderSize(r, 64<<10), domains: true}
}

// errLong marks an overlong line.
var errLong = errors.New("line too long")

// Next returns the next target or bad line; io.EOF at the end.
func (r *Reader) Next() (Line, error) {
	for {
		raw, err := r.readLine()
		if err == io.EOF {
			return Line{}, io.EOF
		}
		r.n++
		if err == errLong {
			return Line{N: r.n, Err: fmt.Errorf("line %d: %w (over %d bytes)", r.n, errLong, MaxLine)}, nil
		}
		if err != nil {
			return Line{}, err
		}
		if r.domains {
			d, ok, perr := ParseDomain(raw)
			if perr != nil {
				return Line{N: r.n, Err: fmt.Errorf("line %d: %w", r.n, perr)}, nil
			}
			if ok {
				return Line{N: r.n, Domain: d}, nil
			}
			continue
		}
		t, ok, perr := ParseLine(raw, r.proto)
		if perr != nil {
			return Line{N: r.n, Err: fmt.Errorf("line %d: %w", r.n, perr)}, nil
		}
		if ok {
			return Line{N: r.n, Target: t}, nil
		}
	}
}

// readLine returns one line without its end; an overlong line is consumed
// whole and reported as errLong. The last line may lack a newline.
func (r *Reader) readLine() (string, error) {
	var b []byte
	long := false
	for {
		frag, err := r.s.ReadSlice('\n')
		if !long {
			if len(b)+len(frag) > MaxLine+2 {
				long, b = true, nil
			} else {
				b = append(b, frag...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(b) == 0 && !long {
				return "", io.EOF
			}
		case err != nil:
			return "", err
		}
		if long {
			return "", errLong
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
}
