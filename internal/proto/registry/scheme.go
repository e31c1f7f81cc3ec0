package registry

import (
	"fmt"
	"slices"
	"strings"

	"github.com/starttls-go/starttls/internal/proto/dialog"
)

// Scheme is one name the root package dials and accepts (a
// starttls.Protocol value): its default port, its dialogue and its
// implicit-TLS twin. A protocol folder registers one Scheme per name it
// speaks (SMTP: smtp, submission, lmtp) from init; the root package
// builds its table from Schemes.
type Scheme struct {
	Name   string
	Port   int
	Client *dialog.ClientHalf
	Server *dialog.ServerHalf
	// Implicit, when set, is the same dialogue inside TLS from the first
	// byte (smtps for submission).
	Implicit *Twin
}

// Twin is the implicit-TLS variant of a Scheme.
type Twin struct {
	Name string
	Port int
	// ALPN both sides offer unless the caller set its own (PostgreSQL
	// direct SSL: "postgresql").
	ALPN []string
}

// schemes is filled by init functions and only read afterwards.
var schemes = map[string]*Scheme{}

// RegisterScheme adds s; protocol folders call it from init. A name
// registered twice (as a scheme or a twin) panics.
func RegisterScheme(s *Scheme) {
	names := []string{s.Name}
	if s.Implicit != nil {
		names = append(names, s.Implicit.Name)
	}
	for _, n := range names {
		if n == "" || n != strings.ToLower(n) || schemes[n] != nil {
			panic(fmt.Sprintf("registry: scheme %q registered twice, unnamed or not lower-case", n))
		}
	}
	for _, n := range names {
		schemes[n] = s
	}
}

// Schemes lists the registered schemes (not their twins), sorted by name.
func Schemes() []*Scheme {
	var out []*Scheme
	for n, s := range schemes {
		if n == s.Name {
			out = append(out, s)
		}
	}
	slices.SortFunc(out, func(a, b *Scheme) int { return strings.Compare(a.Name, b.Name) })
	return out
}
