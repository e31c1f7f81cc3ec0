package mail

import (
	"slices"
	"strings"
	"testing"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// host builds an MX host as the check would have left it.
func fakeHost(name string, tls, certOK bool, capsAfter ...string) *MXHost {
	rep := &check.Report{Status: starttls.StatusSuccess, Grade: "A"}
	rep.StartTLS.Upgraded = tls
	rep.StartTLS.CapabilitiesAfter = capsAfter
	rep.Certificate.Verification.OK = certOK
	if !certOK {
		rep.Certificate.Verification.Error = "certificate is not valid"
	}
	if !tls {
		rep.Status, rep.Grade = starttls.StatusNotOffered, "F"
	}
	return &MXHost{Name: name, Addresses: []string{"192.0.2.1"}, Checked: "192.0.2.1",
		STARTTLS: tls, CertValid: tls && certOK, RequireTLS: tls && starttls.Capabilities(capsAfter).Has("REQUIRETLS"), Check: rep}
}

func judgeIDs(t *testing.T, r *Report) []string {
	t.Helper()
	c := &run{o: Options{}.withDefaults(), r: r}
	c.judge()
	ids := r.IDs()
	slices.Sort(ids)
	return ids
}

func newReport(hosts ...*MXHost) *Report {
	return &Report{Domain: "example.test", Status: StatusOK, ADTrusted: true, MX: MXInfo{Secure: true, Hosts: hosts},
		MTASTS: MTASTS{Records: []string{"v=STSv1; id=1"}}, Findings: []Finding{}}
}

func enforce(r *Report, mode string, mx ...string) *Report {
	r.MTASTS.Policy = &Policy{Version: "STSv1", Mode: mode, MX: mx, MaxAge: 86400}
	r.MTASTS.Mode = mode
	return r
}

// judgeCase is a report as the discovery phases would leave it and the
// exact finding ids judge must add; sev pins severities that differ from
// the catalogue's.
type judgeCase struct {
	name string
	r    *Report
	want []string
	sev  map[string]check.Severity
}

// judgeCases builds fresh reports on every call: judge mutates them.
func judgeCases() []judgeCase {
	secureDANE := func(verdict string, recs ...TLSA) *HostDANE {
		if len(recs) == 0 {
			recs = []TLSA{NewTLSA(3, 1, 1, "00000000000000000000000000000000000000000000000000000000000000aa")}
		}
		return &HostDANE{Name: "_25._tcp.mx.example.test", Base: "mx.example.test", Secure: true, Verdict: verdict, Records: recs}
	}
	withDANE := func(h *MXHost, d *HostDANE) *MXHost { h.DANE = d; return h }
	d32 := strings.Repeat("ab", 32)
	return []judgeCase{
		{"enforce, all good", enforce(newReport(fakeHost("mx.example.test", true, true)), ModeEnforce, "mx.example.test"), []string{}, nil},
		{"no TLS, no policy", newReport(fakeHost("mx.example.test", false, false)), []string{"stripping-possible"}, nil},
		{"no TLS under enforce", enforce(newReport(fakeHost("mx.example.test", false, false)), ModeEnforce, "mx.example.test"), []string{"mx-no-starttls"}, nil},
		{"no TLS under testing", enforce(newReport(fakeHost("mx.example.test", false, false)), ModeTesting, "mx.example.test"), []string{"stripping-possible"}, nil},
		{"no TLS, DANE", newReport(withDANE(fakeHost("mx.example.test", false, false), secureDANE(DANENoTLS))), []string{"mx-no-starttls"}, nil},
		{"one of two without TLS", enforce(newReport(fakeHost("a.example.test", true, true), fakeHost("b.example.test", false, false)), ModeNone),
			[]string{"stripping-possible"}, nil},
		{"wildcard match", enforce(newReport(fakeHost("a.mx.example.test", true, true)), ModeEnforce, "*.mx.example.test"), []string{}, nil},
		{"wildcard two labels", enforce(newReport(fakeHost("a.b.mx.example.test", true, true)), ModeEnforce, "*.mx.example.test"),
			[]string{"mta-sts-mx-mismatch"}, map[string]check.Severity{"mta-sts-mx-mismatch": check.High}},
		// Under testing senders deliver anyway (RFC 8461 §5): a report, not a refusal.
		{"mismatch under testing", enforce(newReport(fakeHost("b.example.test", true, true)), ModeTesting, "a.example.test"),
			[]string{"mta-sts-mx-mismatch"}, map[string]check.Severity{"mta-sts-mx-mismatch": check.Medium}},
		{"mismatch under none", enforce(newReport(fakeHost("b.example.test", true, true)), ModeNone, "a.example.test"), []string{}, nil},
		{"bad cert under enforce", enforce(newReport(fakeHost("mx.example.test", true, false)), ModeEnforce, "mx.example.test"),
			[]string{"mta-sts-mx-cert-invalid"}, map[string]check.Severity{"mta-sts-mx-cert-invalid": check.High}},
		{"bad cert under testing", enforce(newReport(fakeHost("mx.example.test", true, false)), ModeTesting, "mx.example.test"),
			[]string{"mta-sts-mx-cert-invalid"}, map[string]check.Severity{"mta-sts-mx-cert-invalid": check.Medium}},
		{"bad cert, DANE passes", enforce(newReport(withDANE(fakeHost("mx.example.test", true, false), secureDANE(DANEPass))), ModeEnforce, "mx.example.test"),
			[]string{}, nil},
		{"bad cert without policy", newReport(fakeHost("mx.example.test", true, false)), []string{}, nil},
		{"DANE fail", newReport(withDANE(fakeHost("mx.example.test", true, true), secureDANE(DANEFail))), []string{"dane-mismatch"}, nil},
		// A PKIX record next to a usable one costs little; alone it leaves
		// the host without DANE, which is worse.
		{"PKIX next to DANE-EE", newReport(withDANE(fakeHost("mx.example.test", true, true),
			secureDANE(DANEPass, NewTLSA(1, 1, 1, d32), NewTLSA(3, 1, 1, d32)))),
			[]string{"dane-usage-not-recommended"}, map[string]check.Severity{"dane-usage-not-recommended": check.Low}},
		{"PKIX only", newReport(withDANE(fakeHost("mx.example.test", true, true), secureDANE(DANEUnusable, NewTLSA(0, 0, 1, d32), NewTLSA(1, 1, 1, d32)))),
			[]string{"dane-usage-not-recommended"}, map[string]check.Severity{"dane-usage-not-recommended": check.Medium}},
		{"malformed TLSA", newReport(withDANE(fakeHost("mx.example.test", true, true), secureDANE(DANEUnusable, NewTLSA(3, 1, 1, "abcd")))),
			[]string{"dane-tlsa-unusable"}, nil},
		{"TLSA without DNSSEC", func() *Report {
			r := newReport(withDANE(fakeHost("mx.example.test", true, true), secureDANE(DANEInsecure)))
			r.MX.Hosts[0].DANE.Secure = false
			return r
		}(), []string{"dane-no-dnssec"}, nil},
		{"unreachable", func() *Report {
			h := fakeHost("mx.example.test", false, false)
			h.Check.Status = starttls.StatusConnectRefused
			return enforce(newReport(h), ModeEnforce, "mx.example.test")
		}(), []string{"mx-unreachable"}, nil},
		{"no MTA-STS, no DANE", func() *Report {
			r := newReport(fakeHost("mx.example.test", true, true))
			r.MTASTS.Records = nil
			return r
		}(), []string{"mta-sts-missing"}, map[string]check.Severity{"mta-sts-missing": check.Medium}},
	}
}

func TestJudge(t *testing.T) {
	for _, c := range judgeCases() {
		got := judgeIDs(t, c.r)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
		for _, f := range c.r.Findings {
			if s, ok := c.sev[f.ID]; ok && f.Severity != s {
				t.Errorf("%s: %s at %s, want %s", c.name, f.ID, f.Severity, s)
			}
		}
	}
}

func TestJudgeMTASTSMissingSeverity(t *testing.T) {
	r := newReport(fakeHost("mx.example.test", true, true))
	r.MTASTS.Records = nil
	r.MX.Hosts[0].DANE = &HostDANE{Secure: true, Verdict: DANEPass, Records: []TLSA{NewTLSA(3, 1, 1, "00")}}
	r.MX.Hosts[0].DANE.Records[0].Usable = true
	judgeIDs(t, r)
	if len(r.Findings) != 1 || r.Findings[0].Severity != check.Low || !r.DANE.Enabled {
		t.Errorf("with DANE: %+v enabled %v", r.Findings, r.DANE.Enabled)
	}
	r = newReport(fakeHost("mx.example.test", true, true))
	r.MTASTS.Records = nil
	judgeIDs(t, r)
	if len(r.Findings) != 1 || r.Findings[0].Severity != check.Medium {
		t.Errorf("without DANE: %+v", r.Findings)
	}
}

func TestRequireTLS(t *testing.T) {
	r := enforce(newReport(fakeHost("a.example.test", true, true, "PIPELINING", "REQUIRETLS"), fakeHost("b.example.test", true, true, "requiretls")), ModeEnforce, "*.example.test")
	judgeIDs(t, r)
	if !r.RequireTLS || !r.MX.Hosts[0].RequireTLS {
		t.Errorf("both advertise REQUIRETLS: %v", r.RequireTLS)
	}
	r = enforce(newReport(fakeHost("a.example.test", true, true, "REQUIRETLS"), fakeHost("b.example.test", true, true, "SIZE 100")), ModeEnforce, "*.example.test")
	judgeIDs(t, r)
	if r.RequireTLS || r.MX.Hosts[1].RequireTLS {
		t.Errorf("one lacks REQUIRETLS: %v", r.RequireTLS)
	}
}

func TestGrade(t *testing.T) {
	f := func(ids ...string) []Finding {
		var out []Finding
		for _, id := range ids {
			out = append(out, newFinding(id, ""))
		}
		return out
	}
	for _, c := range []struct {
		name string
		r    Report
		want string
	}{
		{"protected, clean", Report{Status: StatusOK, MTASTS: MTASTS{Mode: ModeEnforce}}, "A+"},
		{"DANE, clean", Report{Status: StatusOK, DANE: DANEInfo{Enabled: true}}, "A+"},
		{"unprotected, info only", Report{Status: StatusOK}, "A"},
		{"low", Report{Status: StatusOK, Findings: f("tlsrpt-missing")}, "A"},
		{"medium", Report{Status: StatusOK, Findings: f("mta-sts-missing")}, "B"},
		{"one high", Report{Status: StatusOK, Findings: f("stripping-possible")}, "C"},
		{"two high", Report{Status: StatusOK, Findings: f("stripping-possible", "mta-sts-mx-mismatch")}, "D"},
		{"critical", Report{Status: StatusOK, Findings: f("dane-mismatch")}, "F"},
		{"dns", Report{Status: StatusDNSError}, "F"},
		{"null MX", Report{Status: StatusNoMail, MX: MXInfo{NullMX: true}}, "n/a"},
		{"capped by a host", Report{Status: StatusOK, MTASTS: MTASTS{Mode: ModeEnforce}, MX: MXInfo{Hosts: []*MXHost{{Check: &check.Report{Grade: "B"}}}}}, "B"},
	} {
		if g := Grade(&c.r); g != c.want {
			t.Errorf("%s: %s, want %s", c.name, g, c.want)
		}
	}
}

func TestCatalogue(t *testing.T) {
	for _, id := range FindingIDs() {
		f := newFinding(id, "x")
		if f.Title == "" || f.Fix == "" || len(f.References) == 0 {
			t.Errorf("%s is incomplete: %+v", id, f)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("an unknown id must panic (a programming error)")
		}
	}()
	newFinding("no-such-id", "")
}
