package all_test

import (
	"testing"

	"github.com/starttls-go/starttls"
	_ "github.com/starttls-go/starttls/internal/proto/all"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// Every base protocol with an upgrade to probe has a description, and
// every description names a base protocol of the library.
func TestEveryProtocolRegistered(t *testing.T) {
	for _, p := range starttls.Protocols() {
		info, err := starttls.Lookup(p)
		if err != nil {
			t.Fatal(err)
		}
		if info.Implicit {
			continue
		}
		d := registry.Lookup(string(p))
		if d == nil {
			t.Errorf("%s: no description registered (internal/proto/all imports its folder?)", p)
			continue
		}
		if d.Probes.Injection == "" {
			t.Errorf("%s: no command-injection probe", p)
		}
		if d.Probes.Sentinel != "" && d.Probes.Judge == nil {
			t.Errorf("%s: a sentinel without a judge", p)
		}
	}
	for _, name := range registry.Names() {
		info, err := starttls.Lookup(starttls.Protocol(name))
		if err != nil || info.Implicit || info.Base != starttls.Protocol(name) {
			t.Errorf("registered %q is not a base protocol of the library (%v)", name, err)
		}
	}
}
