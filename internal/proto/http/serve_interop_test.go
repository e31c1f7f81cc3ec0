package http_test

import (
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The HTTP application behind serve's implicit TLS against curl.

// curl fetches a page from our implicit-TLS HTTP server (https), the
// certificate verified against the throwaway CA; without the CA it refuses.
func TestCurlHTTPS(t *testing.T) {
	s := servetest.Start(t, starttls.HTTPS)
	out, err := servetest.Curl(t, "--cacert", s.CA, "https://localhost:"+s.Port+"/interop")
	if err != nil || !strings.Contains(out, "Hello from starttls serve: GET /interop over TLS=true") {
		t.Errorf("curl https: %v\n%s", err, out)
	}
	if out, err := servetest.Curl(t, "https://localhost:"+s.Port+"/"); err == nil {
		t.Errorf("curl trusted a throwaway CA it was not given: %s", out)
	}
}
