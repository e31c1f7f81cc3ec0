//go:build testssl

package check

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/peer"
)

// TestTestsslDiff is the full differential test: every server of
// internal/peer's StartDiffSet (or those named in STARTTLS_DIFF_SERVERS,
// space-separated), a full check and testssl's default run plus -E (suites
// per version) on each, compared field by field. testssl takes one to four
// minutes per server, hence the build tag:
//
//	go test -tags testssl -run TestTestsslDiff -timeout 90m -v ./check
//	STARTTLS_DIFF_SERVERS="postfix-dhe1024 openssl-s_server" go test -tags testssl -run TestTestsslDiff -timeout 30m -v ./check
func TestTestsslDiff(t *testing.T) {
	peer.Require(t, "testssl", "jq")
	names := strings.Fields(os.Getenv("STARTTLS_DIFF_SERVERS"))
	set := peer.StartDiffSet(t, names...)
	var failed []string
	for _, s := range set {
		t.Run(s.Name, func(t *testing.T) {
			st := diffFields(t, "starttls.jq", diffCheck(t, s))
			def := diffFields(t, "testssl.jq", diffTestssl(t, s, 10*time.Minute))
			suites := diffFields(t, "testssl.jq", diffTestssl(t, s, 10*time.Minute, "-E"))
			for k, v := range suites {
				if strings.HasPrefix(k, "suites ") {
					def[k] = v
				}
			}
			both, bad, known := compareFields(s.Name, st, def)
			for _, k := range known {
				t.Log(k)
			}
			t.Logf("%s: %d fields measured by both, %d disagree", s.Name, both, len(bad))
			if both < 15 {
				t.Errorf("only %d fields measured by both tools", both)
			}
			if len(bad) > 0 {
				failed = append(failed, s.Name)
				t.Errorf("disagreements:\n%s", strings.Join(bad, "\n"))
			}
		})
	}
	if len(failed) > 0 {
		t.Logf("servers with disagreements: %v", failed)
	}
}
