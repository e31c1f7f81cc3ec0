package nntp_test

import (
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/internal/servetest"
)

// The NNTP application behind serve's upgrade and implicit TLS against
// Python's nntplib.

// nntplibScript connects to argv[1]:argv[2] with connect (Python that sets
// s, verifying against the CA file argv[3] through ctx), then prints the
// TLS version, the capabilities and the answer to LIST.
func nntplibScript(connect string) string {
	return `
import nntplib, ssl, sys, warnings
warnings.simplefilter("ignore")
ctx = ssl.create_default_context(cafile=sys.argv[3])
` + connect + `
print("tls", s.sock.version())
print("caps", sorted(s.getcapabilities()))
print("list", s.list()[0])
s.quit()
`
}

// nntplibWants is what nntplibScript prints when all went well.
var nntplibWants = []string{"tls TLSv1.3", "'READER'", "list 215"}

// Python's nntplib upgrades with STARTTLS (RFC 4642), verifying the
// certificate, and asks for capabilities and the group list inside TLS.
func TestPythonNNTP(t *testing.T) {
	bins := peer.Require(t, "python3")
	s := servetest.Start(t, starttls.NNTP)
	script := nntplibScript(`s = nntplib.NNTP(sys.argv[1], int(sys.argv[2]), readermode=False, timeout=10)
s.starttls(ctx)`)
	out, err := servetest.RunClient(t, nil, bins["python3"], "-c", script, s.Host, s.Port, s.CA)
	if err != nil {
		t.Fatalf("python nntplib: %v\n%s", err, out)
	}
	servetest.WantAll(t, "nntplib", out, nntplibWants...)
	// Without the CA the handshake must fail: verification is on.
	out, err = servetest.RunClient(t, nil, bins["python3"], "-c", strings.Replace(script, "cafile=sys.argv[3]", "", 1), s.Host, s.Port, s.CA)
	if err == nil || !strings.Contains(out, "CERTIFICATE_VERIFY_FAILED") {
		t.Errorf("nntplib trusted a CA it was not given: %v\n%s", err, out)
	}
}

// Python's nntplib.NNTP_SSL against our nntps server, verified.
func TestPythonNNTPS(t *testing.T) {
	bins := peer.Require(t, "python3")
	s := servetest.Start(t, starttls.NNTPS)
	script := nntplibScript(`s = nntplib.NNTP_SSL(sys.argv[1], int(sys.argv[2]), ssl_context=ctx, readermode=False, timeout=10)`)
	out, err := servetest.RunClient(t, nil, bins["python3"], "-c", script, "localhost", s.Port, s.CA)
	if err != nil {
		t.Fatalf("python nntplib NNTP_SSL: %v\n%s", err, out)
	}
	servetest.WantAll(t, "nntplib", out, nntplibWants...)
}
