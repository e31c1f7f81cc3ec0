package registry

import (
	"context"
	"reflect"
	"testing"
)

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
