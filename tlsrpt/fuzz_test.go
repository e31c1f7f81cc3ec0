package tlsrpt

import (
	"errors"
	"testing"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

// The report parser never panics, and says ErrInvalid for everything it
// refuses; what it accepts has the fields the store relies on.
func FuzzDecode(f *testing.F) {
	js := allTypesReport("o.test", "f-1").JSON()
	f.Add(js)
	f.Add(tlsrpttest.Gzip(js))
	f.Add([]byte(`{"organization-name":"a","date-range":{"start-datetime":"2026-01-01T00:00:00Z","end-datetime":"2026-01-02T00:00:00Z"},"contact-info":"c","report-id":"r","policies":[]}`))
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, raw, err := Decode(data)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error without ErrInvalid: %v", err)
			}
			return
		}
		if rep.OrganizationName == "" || rep.ReportID == "" || len(raw) > MaxReportBytes || rep.DateRange.End.Before(rep.DateRange.Start) {
			t.Fatalf("accepted an invalid report: %+v", rep)
		}
		for _, p := range rep.Policies {
			if p.Summary.Failed < 0 || p.Summary.Successful < 0 || p.Summary.Failed > MaxCount {
				t.Fatalf("accepted counts %+v", p.Summary)
			}
		}
	})
}

// MIME extraction never panics and classifies every refusal.
func FuzzParseMessage(f *testing.F) {
	js := allTypesReport("o.test", "f-1").JSON()
	f.Add(tlsrpttest.Mail("a@s.test", "t@r.test", "example.org", "f-1", tlsrpttest.Gzip(js), true))
	f.Add(tlsrpttest.Mail("a@s.test", "t@r.test", "example.org", "f-1", js, false))
	f.Add(tlsrpttest.PlainMail("a@s.test", "t@r.test"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		m, err := ParseMessage(raw)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNotReport) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if len(m.Reports) == 0 || len(m.Reports) > maxParts {
			t.Fatalf("accepted %d report parts", len(m.Reports))
		}
	})
}
