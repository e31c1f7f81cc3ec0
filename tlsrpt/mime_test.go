package tlsrpt

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/starttls-go/starttls/tlsrpt/tlsrpttest"
)

func TestParseMessage(t *testing.T) {
	js := allTypesReport("google.com", "r1").JSON()
	for _, gz := range []bool{true, false} {
		payload := js
		if gz {
			payload = tlsrpttest.Gzip(js)
		}
		raw := tlsrpttest.Mail("noreply-smtp-tls-reporting@google.com", "tlsrpt@reports.test", "example.org", "r1", payload, gz)
		m, err := ParseMessage(raw)
		if err != nil {
			t.Fatalf("gzip=%v: %v", gz, err)
		}
		if len(m.Reports) != 1 || m.ReportDomain != "example.org" || m.Submitter != "google.com" {
			t.Fatalf("gzip=%v: %+v", gz, m)
		}
		rep, _, err := Decode(m.Reports[0].Data)
		if err != nil || rep.ReportID != "r1" {
			t.Fatalf("gzip=%v: %v %v", gz, rep, err)
		}
		if gz && !strings.HasSuffix(m.Reports[0].Filename, ".json.gz") {
			t.Errorf("filename %q", m.Reports[0].Filename)
		}
	}
}

func TestParseMessageRefused(t *testing.T) {
	good := tlsrpttest.Mail("a@sender.test", "tlsrpt@reports.test", "example.org", "r1", tlsrpttest.Gzip(allTypesReport("o", "r1").JSON()), true)
	cases := []struct {
		name string
		raw  []byte
		want error
	}{
		{"plain mail", tlsrpttest.PlainMail("a@b.test", "tlsrpt@reports.test"), ErrNotReport},
		{"dmarc report", bytes.Replace(good, []byte(`report-type="tlsrpt"`), []byte(`report-type="dmarc"`), 1), ErrNotReport},
		{"garbage", []byte("\x00\x01 not a message"), ErrNotReport},
		{"no report part", bytes.ReplaceAll(good, []byte("application/tlsrpt+gzip"), []byte("application/zip")), ErrInvalid},
		{"bad transfer encoding", bytes.Replace(good, []byte("Content-Transfer-Encoding: base64"), []byte("Content-Transfer-Encoding: uuencode"), 1), ErrInvalid},
		{"unterminated multipart", good[:len(good)-40], ErrInvalid},
		{"no boundary", bytes.Replace(good, []byte(`; boundary="----=_tlsrpt_boundary_4711"`), nil, 1), ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := ParseMessage(c.raw)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %+v, %v; want %v", m, err, c.want)
			}
		})
	}
}
