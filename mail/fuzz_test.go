package mail

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Fuzz targets for every parser of what a domain or a reporter sends:
// go test -fuzz FuzzParsePolicy ./mail (and the others).

func FuzzParsePolicy(f *testing.F) {
	f.Add([]byte(goodPolicy))
	f.Add([]byte("version: STSv1\nmode: none\nmax_age: 0\n"))
	f.Add([]byte("version: STSv1\nmode: testing\nmode: enforce\nmx: *.a.example\nmax_age: 31557600"))
	f.Add([]byte("version:STSv1\r\n\r\nmx:\tx\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := ParsePolicy(body)
		if err != nil {
			return
		}
		if p.Version != "STSv1" || (p.Mode != ModeEnforce && p.Mode != ModeTesting && p.Mode != ModeNone) ||
			p.MaxAge < 0 || p.MaxAge > MaxMaxAge || (p.Mode != ModeNone && len(p.MX) == 0) {
			t.Fatalf("accepted an invalid policy %+v from %q", p, body)
		}
		// What was accepted survives a round trip.
		var b strings.Builder
		b.WriteString("version: STSv1\nmode: " + p.Mode + "\n")
		for _, m := range p.MX {
			if validMXPattern(m) != nil {
				t.Fatalf("accepted mx %q", m)
			}
			b.WriteString("mx: " + m + "\n")
		}
		b.WriteString("max_age: " + strconv.FormatInt(p.MaxAge, 10) + "\n")
		q, err := ParsePolicy([]byte(b.String()))
		if err != nil || q.Mode != p.Mode || q.MaxAge != p.MaxAge || !slices.Equal(q.MX, p.MX) {
			t.Fatalf("round trip of %+v: %+v, %v", p, q, err)
		}
	})
}

func FuzzParseSTSRecord(f *testing.F) {
	f.Add("v=STSv1; id=20160831085700Z;")
	f.Add("v=STSv1;id=a;ext=b")
	f.Add("v=STSv1 ; id=")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseSTSRecord(s)
		if err != nil {
			return
		}
		if !isSTSCandidate(s) || r.ID == "" || len(r.ID) > 32 {
			t.Fatalf("accepted %q as %+v", s, r)
		}
		for i := 0; i < len(r.ID); i++ {
			if !isAlnum(r.ID[i]) {
				t.Fatalf("accepted id %q", r.ID)
			}
		}
	})
}

func FuzzParseTLSRPTRecord(f *testing.F) {
	f.Add("v=TLSRPTv1;rua=mailto:reports@example.com")
	f.Add("v=TLSRPTv1; rua=mailto:a@b, https://c.example/d; x=y;")
	f.Add("v=TLSRPTv1; rua=")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := ParseTLSRPTRecord(s)
		if err != nil {
			return
		}
		if len(r.RUA) == 0 {
			t.Fatalf("accepted %q without rua", s)
		}
		for _, u := range r.RUA {
			if l := strings.ToLower(u); !strings.HasPrefix(l, "mailto:") && !strings.HasPrefix(l, "https://") {
				t.Fatalf("accepted rua %q", u)
			}
		}
	})
}

func FuzzReadReport(f *testing.F) {
	for _, name := range []string{"testdata/tlsrpt-example.json", "testdata/tlsrpt-second.json"} {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(gz(f, b))
	}
	f.Add([]byte(`{"policies":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		// 1 MiB instead of 16: gzip inputs that inflate to the limit
		// would make each run slow without reaching new code.
		rep, err := decodeReport(data, 1<<20)
		if err != nil {
			return
		}
		if rep.Policies == nil || rep.OrganizationName == "" || rep.DateRange.End.Before(rep.DateRange.Start) {
			t.Fatalf("accepted an invalid report %+v", rep)
		}
		s := Summarize([]string{"x"}, []*AggregateReport{rep}, []error{nil})
		for _, p := range s.Policies {
			var sum int64
			for _, fc := range p.Failures {
				sum += fc.Sessions
			}
			if sum < 0 || p.Successful < 0 || p.Failed < 0 {
				t.Fatalf("negative totals %+v", p)
			}
		}
	})
}
