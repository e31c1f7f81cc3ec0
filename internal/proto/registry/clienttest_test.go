package registry

import "testing"

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
