package serve

import (
	"testing"

	"github.com/starttls-go/starttls"
)

// Each application's own tests live with it, in internal/proto/NAME.

// The demo checks every protocol with a server half end to end, which
// needs a real application behind each (not the drain fallback).
func TestEveryServerProtocolHasApp(t *testing.T) {
	for _, p := range starttls.Protocols() {
		if info, err := starttls.Lookup(p); err == nil && info.Server && !HasApp(p) {
			t.Errorf("%s has a server half but no application", p)
		}
	}
}
