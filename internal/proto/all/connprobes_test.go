package all_test

import (
	"slices"
	"testing"

	_ "github.com/starttls-go/starttls/internal/proto/all"
	"github.com/starttls-go/starttls/internal/proto/registry"
)

// The check's probes registered apart from the descriptions fit them: a
// partial line has its judge, a login is one kind or the other, and no
// folder registers probes for a protocol nobody describes.
func TestConnProbesFitTheirProtocol(t *testing.T) {
	verdicts := map[string][]string{}
	for _, name := range registry.Names() {
		p := registry.Lookup(name).Probes
		var more registry.ConnProbes
		if p.Conn != nil {
			more = *p.Conn
		}
		if p.Partial != "" && more.PartialJudge == nil {
			t.Errorf("%s: a partial-line probe without a judge (ConnProbes.PartialJudge)", name)
		}
		if p.Login != nil && more.Login != nil {
			t.Errorf("%s: two login probes (Probes.Login and ConnProbes.Login)", name)
		}
		if more.LoginSkip != nil && more.Login == nil {
			t.Errorf("%s: LoginSkip without ConnProbes.Login", name)
		}
		if more.PlaintextAnswer != nil && p.PipelinedName == "" {
			t.Errorf("%s: a plaintext answer without PipelinedName for its evidence", name)
		}
		for _, sp := range more.Sessions {
			if sp.Name == "" || len(sp.Verdicts) == 0 || sp.Run == nil {
				t.Errorf("%s: session probe %q incomplete", name, sp.Name)
			}
			// check reports a session probe's verdicts "n/a" by its name
			// alone, so one name has one list of verdicts.
			if v, ok := verdicts[sp.Name]; ok && !slices.Equal(v, sp.Verdicts) {
				t.Errorf("%s: session probe %q gives %v, elsewhere %v", name, sp.Name, sp.Verdicts, v)
			}
			verdicts[sp.Name] = sp.Verdicts
		}
		for _, pp := range more.Plain {
			if pp.Name == "" || pp.Rounds < 1 || pp.Run == nil {
				t.Errorf("%s: plain probe %q incomplete", name, pp.Name)
			}
		}
	}
	for _, name := range []string{"smtp", "submission", "mysql", "postgres"} {
		if more := registry.Lookup(name).Probes.Conn; more == nil || more.Login == nil {
			t.Errorf("%s: no plaintext-login probe", name)
		}
	}
}
