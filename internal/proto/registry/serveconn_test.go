package registry

import (
	"context"
	"reflect"
	"testing"
)

// A folder's serve application reaches its protocol whichever of the two
// init functions runs first; a second one for a name panics, and so does
// one for a protocol whose description already has one.
func TestRegisterServeEitherOrder(t *testing.T) {
	names := []string{"registry-test-a", "registry-test-b", "registry-test-c"}
	defer func() {
		for _, n := range names {
			delete(byName, n)
			delete(serveApps, n)
		}
	}()
	ran := 0
	app := func(context.Context, Session) { ran++ }
	RegisterServe(app, "registry-test-a")
	Register(&Protocol{Name: "registry-test-a"})
	Register(&Protocol{Name: "registry-test-b"})
	RegisterServe(app, "registry-test-b")
	for _, n := range names[:2] {
		Lookup(n).Serve(context.Background(), &lines{failAt: -1})
	}
	if ran != 2 {
		t.Errorf("%d of 2 serve applications attached", ran)
	}
	Register(&Protocol{Name: "registry-test-c", Serve: app})
	for _, n := range []string{"registry-test-a", "registry-test-c"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("a second serve application for %s did not panic", n)
				}
			}()
			RegisterServe(app, n)
		}()
	}
}

func TestServeConnAppNeedsAServeConn(t *testing.T) {
	ran := false
	ServeConnApp(func(context.Context, ServeConn) { ran = true })(context.Background(), &lines{failAt: -1})
	if ran {
		t.Error("an application that needs a ServeConn ran on a line Session")
	}
}

func TestServePlain(t *testing.T) {
	// "AHVzZXIAc2VjcmV0" is user/secret; lines.CheckUser accepts nobody.
	s := &lines{failAt: -1}
	if accepted, broken := ServePlain(s, "AHVzZXIAc2VjcmV0"); accepted || broken || len(s.written) != 0 {
		t.Errorf("initial response: accepted %v broken %v wrote %q", accepted, broken, s.written)
	}
	s = &lines{in: []string{"!!!"}, failAt: -1}
	if accepted, broken := ServePlain(s, ""); accepted || broken || !reflect.DeepEqual(s.written, []string{"+ "}) {
		t.Errorf("asked: accepted %v broken %v wrote %q", accepted, broken, s.written)
	}
	if _, broken := ServePlain(&lines{failAt: -1}, ""); !broken {
		t.Error("no response to the continuation is not a broken session")
	}
}
