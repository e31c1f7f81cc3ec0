// Package tlsrpt collects RFC 8460 TLS-RPT aggregate reports: it takes them
// by SMTP (rua=mailto:), HTTPS POST (rua=https:) or from an IMAP mailbox,
// validates them strictly, stores each one whole (or quarantines it) in
// SQLite or PostgreSQL tables named tlsrpt_*, summarises them per policy,
// sender, failure type and day, and raises alerts through a webhook.
package tlsrpt

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/starttls-go/starttls/mail"
)

// Report is one parsed RFC 8460 aggregate report. The type is the mail
// package's, so that `starttls tlsrpt FILE` and the collector agree.
type Report = mail.AggregateReport

// Limits on one report. A real daily report from a large sender is a few
// hundred KiB; anything past these is garbage or an attack.
const (
	// MaxReportBytes caps a report's JSON after decompression (gzip bombs).
	MaxReportBytes = 10 << 20
	// MaxPolicies and MaxFailureDetails cap the rows one report may add.
	MaxPolicies       = 10000
	MaxFailureDetails = 10000
	// MaxCount caps any session count: a sender cannot have made more
	// sessions than this in a day (a trillion).
	MaxCount = 1_000_000_000_000
	// maxString caps identifiers and names.
	maxString = 1024
)

// ErrInvalid wraps every reason a payload is not a valid report, so that
// callers can tell "malformed, quarantine it" from storage failures.
var ErrInvalid = errors.New("invalid TLS-RPT report")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Decode takes one payload as delivered (gzip or plain JSON), gunzips it
// with the size capped, and parses it with ParseJSON. The returned JSON is
// the decompressed document, for storing.
func Decode(payload []byte) (*Report, []byte, error) {
	data := payload
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, nil, invalid("gzip: %v", err)
		}
		zr.Multistream(false)
		var out bytes.Buffer
		if _, err := out.ReadFrom(io.LimitReader(zr, MaxReportBytes+1)); err != nil {
			return nil, nil, invalid("gzip: %v", err)
		}
		if out.Len() > MaxReportBytes {
			return nil, nil, invalid("decompressed report larger than %d bytes", MaxReportBytes)
		}
		data = out.Bytes()
	} else if len(data) > MaxReportBytes {
		return nil, nil, invalid("report larger than %d bytes", MaxReportBytes)
	}
	rep, err := ParseJSON(data)
	return rep, data, err
}

// presence mirrors the report with raw fields, to tell a missing required
// member from a zero value.
type presence struct {
	Org       json.RawMessage `json:"organization-name"`
	DateRange *struct {
		Start json.RawMessage `json:"start-datetime"`
		End   json.RawMessage `json:"end-datetime"`
	} `json:"date-range"`
	Contact  json.RawMessage `json:"contact-info"`
	ReportID json.RawMessage `json:"report-id"`
	Policies []struct {
		Policy *struct {
			Type   json.RawMessage `json:"policy-type"`
			Domain json.RawMessage `json:"policy-domain"`
		} `json:"policy"`
		Summary *struct {
			OK   json.RawMessage `json:"total-successful-session-count"`
			Fail json.RawMessage `json:"total-failure-session-count"`
		} `json:"summary"`
		Failures []struct {
			ResultType json.RawMessage `json:"result-type"`
			Count      json.RawMessage `json:"failed-session-count"`
		} `json:"failure-details"`
	} `json:"policies"`
}

// ParseJSON parses and validates report JSON against RFC 8460 §4.4: every
// required member present with its type, counts within [0, MaxCount],
// dates in RFC 3339, known policy types, IP addresses that parse. Result
// types outside §4.3 are accepted (the registry can grow) and reported as
// unknown by the summary.
func ParseJSON(data []byte) (*Report, error) {
	if len(data) > MaxReportBytes {
		return nil, invalid("report larger than %d bytes", MaxReportBytes)
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, invalid("not a JSON object")
	}
	if bytes.Contains(data, []byte(`\u0000`)) {
		// No store keeps NUL in text (PostgreSQL refuses it); no report needs one.
		return nil, invalid("JSON string with a NUL character")
	}
	var rep Report
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&rep); err != nil {
		return nil, invalid("JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, invalid("JSON: data after the report object")
	}
	var p presence
	if err := json.Unmarshal(data, &p); err != nil {
		return nil, invalid("JSON: %v", err)
	}
	var errs []string
	add := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	str := func(name string, raw json.RawMessage, v string) {
		switch {
		case missing(raw):
			add("missing %s", name)
		case strings.TrimSpace(v) == "":
			add("empty %s", name)
		case len(v) > maxString:
			add("%s longer than %d bytes", name, maxString)
		}
	}
	str("organization-name", p.Org, rep.OrganizationName)
	str("contact-info", p.Contact, rep.ContactInfo)
	str("report-id", p.ReportID, rep.ReportID)
	if p.DateRange == nil || missing(p.DateRange.Start) || missing(p.DateRange.End) {
		add("missing date-range start-datetime/end-datetime")
	} else if rep.DateRange.End.Before(rep.DateRange.Start) {
		add("date-range ends before it starts")
	} else if rep.DateRange.End.Sub(rep.DateRange.Start) > 366*24*time.Hour {
		add("date-range longer than a year")
	}
	if p.Policies == nil {
		add("missing policies")
	}
	if len(rep.Policies) > MaxPolicies {
		add("more than %d policies", MaxPolicies)
	}
	count := func(name string, raw json.RawMessage, v int64) {
		switch {
		case missing(raw):
			add("missing %s", name)
		case v < 0:
			add("negative %s", name)
		case v > MaxCount:
			add("%s %d exceeds %d", name, v, int64(MaxCount))
		}
	}
	for i, pol := range rep.Policies {
		at := fmt.Sprintf("policies[%d]", i)
		pp := p.Policies[i]
		if pp.Policy == nil {
			add("%s: missing policy", at)
		} else {
			switch pol.Policy.Type {
			case "sts", "tlsa", "no-policy-found":
			default:
				add("%s: policy-type %q is not sts, tlsa or no-policy-found", at, clip(pol.Policy.Type))
			}
			str(at+".policy-domain", pp.Policy.Domain, pol.Policy.Domain)
		}
		if pp.Summary == nil {
			add("%s: missing summary", at)
		} else {
			count(at+".total-successful-session-count", pp.Summary.OK, pol.Summary.Successful)
			count(at+".total-failure-session-count", pp.Summary.Fail, pol.Summary.Failed)
		}
		if len(pol.FailureDetails) > MaxFailureDetails {
			add("%s: more than %d failure-details", at, MaxFailureDetails)
			continue
		}
		for j, f := range pol.FailureDetails {
			fat := fmt.Sprintf("%s.failure-details[%d]", at, j)
			str(fat+".result-type", pp.Failures[j].ResultType, f.ResultType)
			count(fat+".failed-session-count", pp.Failures[j].Count, f.FailedSessionCount)
			for _, ip := range []struct{ name, v string }{{"sending-mta-ip", f.SendingMTAIP}, {"receiving-ip", f.ReceivingIP}} {
				if ip.v == "" {
					continue
				}
				if _, err := netip.ParseAddr(ip.v); err != nil {
					add("%s.%s %q is not an IP address", fat, ip.name, clip(ip.v))
				}
			}
			if len(f.ReceivingMXHostname) > 255 || len(f.AdditionalInformation) > 4096 || len(f.FailureReasonCode) > maxString {
				add("%s: over-long string", fat)
			}
		}
	}
	if len(errs) > 0 {
		return nil, invalid("%s", strings.Join(errs, "; "))
	}
	return &rep, nil
}

func missing(raw json.RawMessage) bool { return raw == nil || string(raw) == "null" }

// clip shortens untrusted text quoted in an error.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
