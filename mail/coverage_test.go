package mail

import (
	"slices"
	"testing"

	"github.com/starttls-go/starttls/mail/mailtest"
)

// TestFindingCases holds the issue's rule "each finding id has a positive
// and a negative test" for every id in the catalogue, so that an id cannot
// be added without cases. The cases are the tables whose exact ids other
// tests assert: mailtest's domains (TestDomains, real DNSSEC), the fake
// world's domains (TestDiscovery) and the judge's reports (TestJudge).
// A negative must come from a table that also has a positive, so that the
// code that emits the id was run and declined, not merely never reached.
func TestFindingCases(t *testing.T) {
	tables := map[string][][]string{}
	for _, c := range mailtest.Expected() {
		tables["mailtest"] = append(tables["mailtest"], c.Want)
	}
	for _, c := range discoveryCases() {
		tables["discovery"] = append(tables["discovery"], c.want)
	}
	for _, c := range judgeCases() {
		tables["judge"] = append(tables["judge"], c.want)
	}
	known := FindingIDs()
	for name, cases := range tables {
		for _, want := range cases {
			for _, id := range want {
				if !slices.Contains(known, id) {
					t.Errorf("%s table: a case wants %q, which is not in the catalogue", name, id)
				}
			}
		}
	}
	for _, id := range known {
		var pos, neg []string
		for name, cases := range tables {
			p, n := false, false
			for _, want := range cases {
				if slices.Contains(want, id) {
					p = true
				} else {
					n = true
				}
			}
			if p {
				pos = append(pos, name)
				if n {
					neg = append(neg, name)
				}
			}
		}
		switch {
		case len(pos) == 0:
			t.Errorf("%s: no case produces it (add one to mailtest, discoveryCases or judgeCases)", id)
		case len(neg) == 0:
			t.Errorf("%s: produced by every case of %v; add a case where it must be absent", id, pos)
		}
	}
}
