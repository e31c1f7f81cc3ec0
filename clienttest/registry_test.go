package clienttest

import (
	"testing"

	"github.com/starttls-go/starttls/internal/proto/registry"
)

// Every protocol folder's ClientTest is whole: a personality or a
// dialect, never both, with what play and judge call on it.
func TestRegisteredClientTestsAreWhole(t *testing.T) {
	n := 0
	for _, name := range registry.Names() {
		ct := registry.Lookup(name).ClientTest
		if ct == nil {
			continue
		}
		n++
		if (ct.Line == nil) == (ct.Dialect == nil) {
			t.Errorf("%s: want exactly one of Line and Dialect", name)
			continue
		}
		if len(ct.Leaks) == 0 && ct.Leak == nil {
			t.Errorf("%s: no leaks to judge", name)
		}
		if ct.LoginLine == "" && ct.LoginRaw == nil {
			t.Errorf("%s: no login for LibraryClient", name)
		}
		if l := ct.Line; l != nil {
			if l.Caps == nil || l.GoAhead == nil || l.OK == nil || l.Inject == nil || l.UpgradeVerb == "" {
				t.Errorf("%s: personality lacks Caps, GoAhead, OK, Inject or UpgradeVerb", name)
			}
			if _, ok := l.Refusals[l.NoTLS]; !ok {
				t.Errorf("%s: NoTLS %q is not one of its Refusals", name, l.NoTLS)
			}
		} else if ct.Dialect.Open == nil {
			t.Errorf("%s: dialect without Open", name)
		}
		for _, s := range ct.Scenarios {
			if _, ok := kinds[s.Kind]; !ok {
				t.Errorf("%s: scenario %s has unknown kind %q", name, s.Name, s.Kind)
			}
			if s.Referral && ct.Referral == nil {
				t.Errorf("%s: scenario %s refers to a server the protocol does not have", name, s.Name)
			}
		}
	}
	if n == 0 {
		t.Error("no protocol registered a client test: is internal/proto/all imported?")
	}
}
