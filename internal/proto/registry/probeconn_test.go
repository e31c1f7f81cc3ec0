package registry

import "testing"

func TestRegisterConnProbes(t *testing.T) {
	const name = "registry-test-connprobes"
	if got := ConnProbesOf(name); got.Login != nil || got.Plain != nil {
		t.Fatalf("unregistered %q: %+v", name, got)
	}
	RegisterConnProbes(&ConnProbes{NoSecondUpgrade: "because"}, name)
	defer delete(connProbes, name)
	if got := ConnProbesOf(name).NoSecondUpgrade; got != "because" {
		t.Errorf("NoSecondUpgrade %q", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second registration did not panic")
		}
	}()
	RegisterConnProbes(&ConnProbes{}, name)
}
