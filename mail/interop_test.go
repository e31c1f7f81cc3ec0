package mail

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/internal/peer"
	"github.com/starttls-go/starttls/mail/mailtest"
)

// TestDomains runs every domain of the loopback world (NSD + unbound with
// DNSSEC, serve and Postfix MX hosts, an HTTPS policy host) and compares
// the finding ids exactly.
func TestDomains(t *testing.T) {
	e := mailtest.Start(t)
	t.Logf("%s; unbound %s; %s; postfix %s", e.DNS.NSDVersion, e.DNS.UnboundVersion, e.DNS.LDNSVersion, e.Postfix.Version)
	o := Options{Resolver: &Resolver{Addr: e.Resolver, Timeout: 5 * time.Second}, Roots: e.Roots,
		SMTPPort: e.SMTPPort, HTTPSPort: e.HTTPSPort, Timeout: 5 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, c := range e.Cases {
		t.Run(c.Domain, func(t *testing.T) {
			r := Run(ctx, c.Domain, o)
			got := r.IDs()
			slices.Sort(got)
			if !slices.Equal(got, c.Want) || r.Status != c.Status {
				t.Errorf("%s (%s): findings %v status %s, want %v status %s", c.Domain, c.Note, got, r.Status, c.Want, c.Status)
				for _, f := range r.Findings {
					t.Logf("  %s %s: %s", f.Severity, f.ID, f.Evidence)
				}
			}
		})
	}
	t.Run("requiretls", func(t *testing.T) {
		// Only the fake MX advertises it; serve's EHLO does not.
		for d, want := range map[string]bool{"requiretls.mail.test": true, "good.mail.test": false} {
			r := Run(ctx, d, o)
			if r.RequireTLS != want || len(r.MX.Hosts) != 1 && want {
				t.Errorf("%s: requiretls %v, want %v", d, r.RequireTLS, want)
			}
			for _, h := range r.MX.Hosts {
				if h.RequireTLS != want {
					t.Errorf("%s %s: requiretls %v, want %v (capabilities after TLS %v)", d, h.Name, h.RequireTLS, want, h.Check.StartTLS.CapabilitiesAfter)
				}
			}
		}
	})
	t.Run("openssl-dane", func(t *testing.T) { crossCheckOpenSSL(t, e, o) })
	t.Run("posttls-finger-dane", func(t *testing.T) { crossCheckPostfix(t, e, o) })
}

// TestDomains' DANE verdicts cross-checked with OpenSSL's own DANE code
// (s_client -dane_tlsa_rrdata, with -dane_ee_no_namechecks as RFC 7672
// §3.1.1 and Postfix do): for each host with usable TLSA records,
// OpenSSL must verify exactly when we say "pass".
func crossCheckOpenSSL(t *testing.T, e *mailtest.Env, o Options) {
	bins := peer.Require(t, "openssl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	checked := 0
	for _, d := range []string{"good.mail.test", "badtlsa.mail.test", "cname.mail.test", "pkix.mail.test", "badparams.mail.test", "daneta.mail.test"} {
		r := Run(ctx, d, o)
		for _, h := range r.MX.Hosts {
			hd := h.DANE
			if hd == nil || !hd.Secure || h.Checked == "" {
				continue
			}
			args := []string{"s_client", "-starttls", "smtp", "-connect", net.JoinHostPort(h.Checked, strconv.Itoa(o.SMTPPort)),
				"-servername", hd.Base, "-dane_tlsa_domain", hd.Base, "-dane_ee_no_namechecks", "-verify_return_error", "-brief"}
			for _, rec := range hd.Records {
				if rec.Usable {
					args = append(args, "-dane_tlsa_rrdata", fmt.Sprintf("%d %d %d %s", rec.Usage, rec.Selector, rec.MatchingType, rec.Data))
				}
			}
			cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
			out, err := exec.CommandContext(cctx, bins["openssl"], args...).CombinedOutput()
			ccancel()
			opensslOK := err == nil && strings.Contains(string(out), "Verification: OK")
			if opensslOK != (hd.Verdict == DANEPass) {
				t.Errorf("%s %s: our verdict %s (%s), openssl ok=%v:\n%s", d, h.Name, hd.Verdict, hd.Detail, opensslOK, out)
			} else {
				t.Logf("%s %s: verdict %s agrees with openssl (%s)", d, h.Name, hd.Verdict, firstMatching(string(out), "DANE TLSA", "verify error", "Verification"))
			}
			checked++
		}
	}
	if checked < 7 {
		t.Errorf("cross-checked %d hosts, want at least 7", checked)
	}
}

func firstMatching(s string, prefixes ...string) string {
	for _, l := range strings.Split(s, "\n") {
		for _, p := range prefixes {
			if strings.Contains(l, p) {
				return strings.TrimSpace(l)
			}
		}
	}
	return ""
}

// crossCheckPostfix compares our DANE verdicts with Postfix's own DANE
// client, posttls-finger -l dane, run in a private mount namespace whose
// /etc/resolv.conf points at the test unbound (on port 53 of a 127.53.x.y
// address, since resolv.conf has no port) with "options trust-ad".
func crossCheckPostfix(t *testing.T, e *mailtest.Env, o Options) {
	bins := peer.Require(t, "posttls-finger", "unshare")
	if e.DNS.Resolver53 == "" {
		peer.Unavailable(t, "no loopback address with a free port 53 (or not root): posttls-finger cannot reach the test resolver")
	}
	rc := filepath.Join(t.TempDir(), "resolv.conf")
	ns, _, _ := net.SplitHostPort(e.DNS.Resolver53)
	if err := os.WriteFile(rc, []byte("nameserver "+ns+"\noptions trust-ad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	checked := 0
	for _, d := range []string{"good.mail.test", "badtlsa.mail.test", "cname.mail.test", "pkix.mail.test", "plain.test", "badparams.mail.test", "daneta.mail.test"} {
		r := Run(ctx, d, o)
		for _, h := range r.MX.Hosts {
			ours := DANENone
			if h.DANE != nil {
				ours = h.DANE.Verdict
			}
			target := fmt.Sprintf("[%s]:%d", h.Name, o.SMTPPort)
			script := fmt.Sprintf("mount --bind %s /etc/resolv.conf && exec %s -c -l dane -t 10 -T 10 -L summary '%s'", rc, bins["posttls-finger"], target)
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			out, err := exec.CommandContext(cctx, bins["unshare"], "-m", "sh", "-c", script).CombinedOutput()
			ccancel()
			s := string(out)
			theirs := DANENone
			switch {
			case strings.Contains(s, "Verified TLS connection established"):
				theirs = DANEPass
			case strings.Contains(s, "no matching DANE TLSA records"):
				theirs = DANEFail
			}
			want := ours
			if ours == DANEInsecure {
				want = DANENone // DANE does not apply: Postfix falls back to opportunistic TLS
			}
			if err != nil || theirs != want {
				t.Errorf("%s %s: our verdict %s, posttls-finger %s (%v):\n%s", d, h.Name, ours, theirs, err, s)
			} else {
				t.Logf("%s %s: verdict %s agrees with posttls-finger (%s)", d, h.Name, ours, firstMatching(s, "Verified TLS", "Untrusted TLS", "verification failed"))
			}
			checked++
		}
	}
	if checked < 8 {
		t.Errorf("cross-checked %d hosts, want at least 8", checked)
	}
}
