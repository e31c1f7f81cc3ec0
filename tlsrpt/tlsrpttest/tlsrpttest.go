// Package tlsrpttest makes realistic RFC 8460 reports and report mails for
// tests: what Google, Microsoft and Postfix-based senders send, with every
// result type of RFC 8460 §4.3.
package tlsrpttest

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// ResultTypes are the result types of RFC 8460 §4.3 (the IANA "STARTTLS
// Validation Result Types" registry as of the RFC).
var ResultTypes = []string{
	"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
	"certificate-not-trusted", "validation-failure", "tlsa-invalid", "dnssec-invalid",
	"dane-required", "sts-policy-fetch-error", "sts-policy-invalid", "sts-webpki-invalid",
}

// Failure is one failure-detail row to put in a report.
type Failure struct {
	ResultType string
	Sessions   int64
}

// Report describes one report to build.
type Report struct {
	Org, ReportID string
	Start         time.Time // the day; the period is 24 hours
	Domain        string    // policy domain
	PolicyType    string    // sts, tlsa, no-policy-found
	Successful    int64
	Failures      []Failure
}

// JSON builds the report's JSON as a sender would.
func (r Report) JSON() []byte {
	var failed int64
	var details []map[string]any
	for i, f := range r.Failures {
		failed += f.Sessions
		d := map[string]any{
			"result-type":           f.ResultType,
			"sending-mta-ip":        fmt.Sprintf("192.0.2.%d", 10+i),
			"receiving-mx-hostname": "mx1." + r.Domain,
			"receiving-ip":          fmt.Sprintf("2001:db8::%x", 25+i),
			"failed-session-count":  f.Sessions,
		}
		if i%2 == 0 {
			d["receiving-mx-helo"] = "mx1." + r.Domain
			d["additional-information"] = "https://" + r.Org + "/tlsrpt/help/" + f.ResultType
			d["failure-reason-code"] = "X509_V_ERR_" + strings.ToUpper(strings.ReplaceAll(f.ResultType, "-", "_"))
		}
		details = append(details, d)
	}
	policy := map[string]any{"policy-type": r.PolicyType, "policy-domain": r.Domain}
	switch r.PolicyType {
	case "sts":
		policy["policy-string"] = []string{"version: STSv1", "mode: enforce", "mx: mx1." + r.Domain, "mx: *.backup." + r.Domain, "max_age: 604800"}
		policy["mx-host"] = []string{"mx1." + r.Domain, "*.backup." + r.Domain}
	case "tlsa":
		policy["policy-string"] = []string{"3 1 1 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
		policy["mx-host"] = []string{"mx1." + r.Domain}
	}
	p := map[string]any{
		"policy": policy,
		"summary": map[string]any{
			"total-successful-session-count": r.Successful,
			"total-failure-session-count":    failed,
		},
	}
	if details != nil {
		p["failure-details"] = details
	}
	doc := map[string]any{
		"organization-name": r.Org,
		"date-range": map[string]any{
			"start-datetime": r.Start.UTC().Format(time.RFC3339),
			"end-datetime":   r.Start.Add(24*time.Hour - time.Second).UTC().Format(time.RFC3339),
		},
		"contact-info": "smtp-tls-reporting@" + r.Org,
		"report-id":    r.ReportID,
		"policies":     []any{p},
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		panic(err)
	}
	return b
}

// Gzip compresses data.
func Gzip(data []byte) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	_, _ = zw.Write(data)
	_ = zw.Close()
	return b.Bytes()
}

// Mail wraps a report payload in an RFC 8460 §5.3 message: multipart/report;
// report-type=tlsrpt with a text part and the report, gzip (base64) or
// plain JSON. payload is used as it is (it may be deliberately broken).
func Mail(from, to, domain, reportID string, payload []byte, gz bool) []byte {
	const boundary = "----=_tlsrpt_boundary_4711"
	var b bytes.Buffer
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\r\n", args...) }
	w("From: TLS reporting <%s>", from)
	w("To: <%s>", to)
	w("Subject: Report Domain: %s Submitter: %s Report-ID: <%s>", domain, strings.SplitN(from, "@", 2)[1], reportID)
	w("Date: %s", time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC).Format(time.RFC1123Z))
	w("Message-ID: <%s@%s>", strings.NewReplacer("@", ".", "<", "", ">", "").Replace(reportID), strings.SplitN(from, "@", 2)[1])
	w("TLS-Report-Domain: %s", domain)
	w("TLS-Report-Submitter: %s", strings.SplitN(from, "@", 2)[1])
	w("MIME-Version: 1.0")
	w(`Content-Type: multipart/report; report-type="tlsrpt"; boundary="%s"`, boundary)
	w("")
	w("This is a multipart message in MIME format.")
	w("")
	w("--%s", boundary)
	w("Content-Type: text/plain; charset=us-ascii")
	w("")
	w("This is an aggregate TLS report from %s", strings.SplitN(from, "@", 2)[1])
	w("")
	w("--%s", boundary)
	if gz {
		name := fmt.Sprintf("%s!%s!1764633600!1764719999.json.gz", strings.SplitN(from, "@", 2)[1], domain)
		w(`Content-Type: application/tlsrpt+gzip; name="%s"`, name)
		w("Content-Transfer-Encoding: base64")
		w(`Content-Disposition: attachment; filename="%s"`, name)
		w("")
		enc := base64.StdEncoding.EncodeToString(payload)
		for len(enc) > 76 {
			w("%s", enc[:76])
			enc = enc[76:]
		}
		w("%s", enc)
	} else {
		w("Content-Type: application/tlsrpt+json")
		w("Content-Transfer-Encoding: 7bit")
		w("")
		for _, l := range strings.Split(string(payload), "\n") {
			w("%s", l)
		}
	}
	w("")
	w("--%s--", boundary)
	return b.Bytes()
}

// PlainMail is an ordinary message, which a rua address must refuse.
func PlainMail(from, to string) []byte {
	return []byte("From: <" + from + ">\r\nTo: <" + to + ">\r\nSubject: hello\r\nMessage-ID: <plain.1@example.net>\r\n\r\nNot a report.\r\n")
}
