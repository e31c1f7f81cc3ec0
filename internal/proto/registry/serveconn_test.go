package registry

import (
	"context"
	"reflect"
	"testing"
)

func TestServeRegisterAndFor(t *testing.T) {
	defer delete(serveApps, "registry-serve-test")
	ran := false
	ServeRegister("registry-serve-test", func(context.Context, Session) { ran = true })
	a := ServeFor("registry-serve-test")
	if a == nil {
		t.Fatal("a registered application is not found")
	}
	a(context.Background(), &lines{failAt: -1})
	if !ran || ServeFor("registry-serve-test-other") != nil {
		t.Errorf("ran %v; an unregistered name has an application", ran)
	}
	defer func() {
		if recover() == nil {
			t.Error("a second ServeRegister did not panic")
		}
	}()
	ServeRegister("registry-serve-test", func(context.Context, Session) {})
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
