package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

var day = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

func allTypesReport(org, id string) tlsrpttest.Report {
	r := tlsrpttest.Report{Org: org, ReportID: id, Start: day, Domain: "example.org", PolicyType: "sts", Successful: 900}
	for i, t := range tlsrpttest.ResultTypes {
		r.Failures = append(r.Failures, tlsrpttest.Failure{ResultType: t, Sessions: int64(i + 1)})
	}
	return r
}

func TestDecodeValid(t *testing.T) {
	js := allTypesReport("google.com", "2026-12-01T00:00:00Z_example.org").JSON()
	for name, payload := range map[string][]byte{"json": js, "gzip": tlsrpttest.Gzip(js)} {
		rep, raw, err := Decode(payload)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(raw, js) {
			t.Errorf("%s: decoded JSON differs from the original", name)
		}
		if len(rep.Policies) != 1 || len(rep.Policies[0].FailureDetails) != 11 || rep.Policies[0].Summary.Failed != 66 {
			t.Errorf("%s: parsed %+v", name, rep.Policies)
		}
		if !rep.DateRange.Start.Equal(day) {
			t.Errorf("%s: start %v", name, rep.DateRange.Start)
		}
	}
}

// mutate parses the sample into a generic map, lets f change it, and
// returns the JSON.
func mutate(t *testing.T, f func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(allTypesReport("o", "id").JSON(), &m); err != nil {
		t.Fatal(err)
	}
	f(m)
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func pol(m map[string]any) map[string]any { return m["policies"].([]any)[0].(map[string]any) }
func fd(m map[string]any) map[string]any {
	return pol(m)["failure-details"].([]any)[0].(map[string]any)
}

func TestDecodeInvalid(t *testing.T) {
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 11; i++ {
		_, _ = zw.Write(zeros)
	}
	_ = zw.Close()
	cases := []struct {
		name, want string
		data       []byte
	}{
		{"not JSON", "not a JSON object", []byte("hello")},
		{"array", "not a JSON object", []byte("[1,2]")},
		{"trailing data", "after the report", append(allTypesReport("o", "i").JSON(), []byte(" {}")...)},
		{"gzip bomb", "larger than", bomb.Bytes()},
		{"broken gzip", "gzip", []byte{0x1f, 0x8b, 8, 0, 1, 2}},
		{"no org", "missing organization-name", mutate(t, func(m map[string]any) { delete(m, "organization-name") })},
		{"empty report-id", "empty report-id", mutate(t, func(m map[string]any) { m["report-id"] = " " })},
		{"no contact", "missing contact-info", mutate(t, func(m map[string]any) { delete(m, "contact-info") })},
		{"org is a number", "JSON", mutate(t, func(m map[string]any) { m["organization-name"] = 7 })},
		{"date not RFC 3339", "JSON", mutate(t, func(m map[string]any) {
			m["date-range"].(map[string]any)["start-datetime"] = "2026-12-01 00:00:00"
		})},
		{"no end date", "missing date-range", mutate(t, func(m map[string]any) { delete(m["date-range"].(map[string]any), "end-datetime") })},
		{"reversed dates", "ends before", mutate(t, func(m map[string]any) {
			m["date-range"].(map[string]any)["end-datetime"] = "2020-01-01T00:00:00Z"
		})},
		{"no policies", "missing policies", mutate(t, func(m map[string]any) { delete(m, "policies") })},
		{"bad policy type", "policy-type", mutate(t, func(m map[string]any) { pol(m)["policy"].(map[string]any)["policy-type"] = "dmarc" })},
		{"no summary", "missing summary", mutate(t, func(m map[string]any) { delete(pol(m), "summary") })},
		{"count as string", "JSON", mutate(t, func(m map[string]any) {
			pol(m)["summary"].(map[string]any)["total-successful-session-count"] = "12"
		})},
		{"negative count", "negative", mutate(t, func(m map[string]any) {
			pol(m)["summary"].(map[string]any)["total-failure-session-count"] = -1
		})},
		{"huge count", "exceeds", mutate(t, func(m map[string]any) { fd(m)["failed-session-count"] = 1e15 })},
		{"overflowing count", "JSON", []byte(strings.Replace(string(allTypesReport("o", "i").JSON()), `"failed-session-count": 1,`, `"failed-session-count": 99999999999999999999999,`, 1))},
		{"fractional count", "JSON", mutate(t, func(m map[string]any) { fd(m)["failed-session-count"] = 1.5 })},
		{"no result-type", "missing policies[0].failure-details[0].result-type", mutate(t, func(m map[string]any) { delete(fd(m), "result-type") })},
		{"no failed count", "missing policies[0].failure-details[0].failed-session-count", mutate(t, func(m map[string]any) { delete(fd(m), "failed-session-count") })},
		{"bad IP", "not an IP address", mutate(t, func(m map[string]any) { fd(m)["sending-mta-ip"] = "999.1.1.1" })},
		{"NUL", "NUL", mutate(t, func(m map[string]any) { m["organization-name"] = "a\x00b" })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rep, _, err := Decode(c.data)
			if !errors.Is(err, ErrInvalid) || rep != nil {
				t.Fatalf("got %v, %v; want ErrInvalid", rep, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
		})
	}
}

// A result type outside RFC 8460 §4.3 is kept (the registry grows).
func TestDecodeUnknownResultType(t *testing.T) {
	js := mutate(t, func(m map[string]any) { fd(m)["result-type"] = "future-type" })
	rep, _, err := Decode(js)
	if err != nil || rep.Policies[0].FailureDetails[0].ResultType != "future-type" {
		t.Fatalf("%v %v", rep, err)
	}
}
