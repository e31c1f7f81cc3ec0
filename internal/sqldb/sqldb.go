// Package sqldb holds what the project's SQLite and PostgreSQL stores
// (watch, tlsrpt) share, so that one query text serves both databases.
package sqldb

import (
	"strconv"
	"strings"
)

// Rebind rewrites the ? placeholders of query as PostgreSQL's $1, $2, ...
// The project's queries hold no ? inside string literals, which this does
// not parse.
func Rebind(query string) string {
	var b strings.Builder
	b.Grow(len(query) + 8)
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
