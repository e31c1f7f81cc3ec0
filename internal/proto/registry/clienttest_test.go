package registry

import "testing"

func TestRegisterClientTestEitherOrder(t *testing.T) {
	defer delete(byName, "ct-before")
	defer delete(byName, "ct-after")
	before, after := &ClientTest{LoginLine: "before"}, &ClientTest{LoginLine: "after"}
	RegisterClientTest("ct-before", before)
	Register(&Protocol{Name: "ct-before"})
	Register(&Protocol{Name: "ct-after"})
	RegisterClientTest("ct-after", after)
	if Lookup("ct-before").ClientTest != before || Lookup("ct-after").ClientTest != after {
		t.Fatal("a client test registered before or after its protocol is lost")
	}
	if len(pendingCT) != 0 {
		t.Errorf("pending left: %v", pendingCT)
	}
	defer delete(pendingCT, "ct-pending")
	RegisterClientTest("ct-pending", before)
	for _, name := range []string{"ct-after", "ct-pending"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("a second client test for %q did not panic", name)
				}
			}()
			RegisterClientTest(name, after)
		}()
	}
}

func TestCTNextTagAndSplit(t *testing.T) {
	for tag, want := range map[string]string{"a1": "a2", "A009": "A010", "x": "x1", "t99": "t100", "": "1"} {
		if got := CTNextTag(tag); got != want {
			t.Errorf("CTNextTag(%q) = %q, want %q", tag, got, want)
		}
	}
	if tag, verb, arg := CTSplit(true, "a1 starttls now"); tag != "a1" || verb != "STARTTLS" || arg != "now" {
		t.Errorf("tagged: %q %q %q", tag, verb, arg)
	}
	if tag, verb, arg := CTSplit(false, "auth tls"); tag != "" || verb != "AUTH" || arg != "tls" {
		t.Errorf("untagged: %q %q %q", tag, verb, arg)
	}
}
