package registry

import "testing"

func TestRegisterScheme(t *testing.T) {
	defer func() { delete(schemes, "zz-test"); delete(schemes, "zz-tests") }()
	RegisterScheme(&Scheme{Name: "zz-test", Port: 1, Implicit: &Twin{Name: "zz-tests", Port: 2}})
	var names []string
	for _, s := range Schemes() {
		names = append(names, s.Name)
	}
	if len(names) == 0 || names[len(names)-1] != "zz-test" {
		t.Errorf("Schemes() = %q: want zz-test last and its twin not listed", names)
	}
	for _, s := range []*Scheme{{Name: "zz-test"}, {Name: "zz-other", Implicit: &Twin{Name: "zz-tests"}}, {}, {Name: "ZZ"}} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("RegisterScheme(%q) did not panic", s.Name)
				}
			}()
			RegisterScheme(s)
		}()
	}
	if schemes["zz-other"] != nil {
		t.Error("a refused scheme was half registered")
	}
}
