package mail

import (
	"bytes"
	"compress/gzip"
	"os"
	"strings"
	"testing"
)

func gz(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestReadReport(t *testing.T) {
	raw, err := os.ReadFile("testdata/tlsrpt-example.json")
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string][]byte{"json": raw, "gzip": gz(t, raw)} {
		rep, err := ReadReport(bytes.NewReader(in))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rep.OrganizationName != "Company-X" || len(rep.Policies) != 1 || rep.Policies[0].Summary.Failed != 303 ||
			len(rep.Policies[0].FailureDetails) != 3 || rep.Policies[0].FailureDetails[2].FailureReasonCode == "" ||
			rep.DateRange.Start.Day() != 1 {
			t.Errorf("%s: parsed %+v", name, rep)
		}
	}
	for _, c := range []struct{ name, in, err string }{
		{"not JSON", "hello", "JSON"},
		{"two objects", `{"organization-name":"x"} {}`, "after the report"},
		{"no policies", `{"organization-name":"x","report-id":"1","date-range":{"start-datetime":"2016-04-01T00:00:00Z","end-datetime":"2016-04-01T23:59:59Z"}}`, "no policies"},
		{"bad type", strings.Replace(string(raw), `"policy-type": "sts"`, `"policy-type": "dmarc"`, 1), "policy-type"},
		{"negative", strings.Replace(string(raw), `5326`, `-1`, 1), "negative"},
		{"bad date", strings.Replace(string(raw), `2016-04-01T00:00:00Z`, `yesterday`, 1), "JSON"},
		{"backwards", strings.Replace(string(raw), `2016-04-01T23:59:59Z`, `2016-03-01T23:59:59Z`, 1), "ends before"},
		{"policies not an array", `{"policies": {}}`, "JSON"},
		{"no organization", strings.Replace(string(raw), `"Company-X"`, `""`, 1), "organization-name"},
	} {
		if _, err := ReadReport(strings.NewReader(c.in)); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: error %v, want %q", c.name, err, c.err)
		}
	}
	if _, err := ReadReport(bytes.NewReader([]byte{0x1f, 0x8b, 0, 0})); err == nil || !strings.Contains(err.Error(), "gzip") {
		t.Errorf("truncated gzip: %v", err)
	}
	// A decompression bomb stops at the limit.
	bomb := gz(t, bytes.Repeat([]byte(" "), MaxReportSize+10))
	if _, err := ReadReport(bytes.NewReader(bomb)); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("bomb: %v", err)
	}
}

func TestSummarize(t *testing.T) {
	var reps []*AggregateReport
	var errs []error
	files := []string{"testdata/tlsrpt-example.json", "testdata/tlsrpt-second.json", "missing.json"}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			reps, errs = append(reps, nil), append(errs, err)
			continue
		}
		r, err := ReadReport(bytes.NewReader(b))
		reps, errs = append(reps, r), append(errs, err)
	}
	s := Summarize(files, reps, errs)
	if s.Schema != SummarySchema || len(s.Reports) != 3 || s.Reports[2].Error == "" || len(s.Policies) != 2 {
		t.Fatalf("summary %+v", s)
	}
	sts := s.Policies[0]
	if sts.Domain != "company-y.example" || sts.Type != "sts" || sts.Successful != 5336 || sts.Failed != 308 ||
		len(sts.Reporters) != 2 || len(sts.Failures) != 3 {
		t.Fatalf("sts policy %+v", sts)
	}
	if f := sts.Failures[0]; f.ResultType != "starttls-not-supported" || f.Sessions != 200 || !f.Known {
		t.Errorf("first failure %+v", f)
	}
	if f := sts.Failures[1]; f.ResultType != "certificate-expired" || f.Sessions != 105 || len(f.MXHosts) != 2 {
		t.Errorf("second failure %+v", f)
	}
	if tl := s.Policies[1]; tl.Type != "tlsa" || tl.Successful != 7 || len(tl.Failures) != 0 {
		t.Errorf("tlsa policy %+v", tl)
	}
}
