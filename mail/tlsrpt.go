package mail

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// TLS-RPT aggregate reports (RFC 8460 §4): the JSON that senders mail or
// POST to the rua of _smtp._tls, gzip-compressed or not.

// MaxReportSize bounds a report after decompression.
const MaxReportSize = 16 << 20

// Result types of RFC 8460 §4.3.
var resultTypes = map[string]bool{
	"starttls-not-supported": true, "certificate-host-mismatch": true, "certificate-expired": true,
	"certificate-not-trusted": true, "validation-failure": true, "tlsa-invalid": true,
	"dnssec-invalid": true, "dane-required": true, "sts-policy-fetch-error": true,
	"sts-policy-invalid": true, "sts-webpki-invalid": true,
}

// AggregateReport is one RFC 8460 report.
type AggregateReport struct {
	OrganizationName string         `json:"organization-name"`
	DateRange        DateRange      `json:"date-range"`
	ContactInfo      string         `json:"contact-info"`
	ReportID         string         `json:"report-id"`
	Policies         []ReportPolicy `json:"policies"`
}

// DateRange is the report's period.
type DateRange struct {
	Start time.Time `json:"start-datetime"`
	End   time.Time `json:"end-datetime"`
}

// ReportPolicy is one policy's results.
type ReportPolicy struct {
	Policy         PolicyDesc      `json:"policy"`
	Summary        ReportSummary   `json:"summary"`
	FailureDetails []FailureDetail `json:"failure-details"`
}

// PolicyDesc names the policy applied.
type PolicyDesc struct {
	Type   string   `json:"policy-type"` // sts, tlsa, no-policy-found
	String []string `json:"policy-string"`
	Domain string   `json:"policy-domain"`
	MXHost []string `json:"mx-host"`
}

// ReportSummary counts sessions.
type ReportSummary struct {
	Successful int64 `json:"total-successful-session-count"`
	Failed     int64 `json:"total-failure-session-count"`
}

// FailureDetail is one kind of failure seen.
type FailureDetail struct {
	ResultType            string `json:"result-type"`
	SendingMTAIP          string `json:"sending-mta-ip"`
	ReceivingMXHostname   string `json:"receiving-mx-hostname"`
	ReceivingMXHelo       string `json:"receiving-mx-helo,omitempty"`
	ReceivingIP           string `json:"receiving-ip"`
	FailedSessionCount    int64  `json:"failed-session-count"`
	AdditionalInformation string `json:"additional-information,omitempty"`
	FailureReasonCode     string `json:"failure-reason-code,omitempty"`
}

// ReadReport reads one report, gunzipping it when it starts with the gzip
// magic, and checks the fields RFC 8460 §4.4 requires.
func ReadReport(r io.Reader) (*AggregateReport, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxReportSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading: %w", err)
	}
	return decodeReport(data, MaxReportSize)
}

// decodeReport gunzips data when needed and parses it; limit bounds the
// input and the decompressed size (the fuzz target uses a small one).
func decodeReport(data []byte, limit int64) (*AggregateReport, error) {
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("report larger than %d bytes", limit)
	}
	if len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		defer zr.Close()
		zr.Multistream(false)
		var out bytes.Buffer
		if _, err := out.ReadFrom(io.LimitReader(zr, limit+1)); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if int64(out.Len()) > limit {
			return nil, fmt.Errorf("report larger than %d bytes", limit)
		}
		data = out.Bytes()
	}
	return ParseReport(data)
}

// ParseReport decodes and validates report JSON.
func ParseReport(data []byte) (*AggregateReport, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	var rep AggregateReport
	if err := dec.Decode(&rep); err != nil {
		return nil, fmt.Errorf("JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("JSON: data after the report object")
	}
	var errs []string
	if rep.OrganizationName == "" {
		errs = append(errs, "no organization-name")
	}
	if rep.ReportID == "" {
		errs = append(errs, "no report-id")
	}
	if rep.DateRange.Start.IsZero() || rep.DateRange.End.IsZero() {
		errs = append(errs, "no date-range")
	} else if rep.DateRange.End.Before(rep.DateRange.Start) {
		errs = append(errs, "date-range ends before it starts")
	}
	if rep.Policies == nil {
		errs = append(errs, "no policies array")
	}
	for i, p := range rep.Policies {
		switch p.Policy.Type {
		case "sts", "tlsa", "no-policy-found":
		default:
			errs = append(errs, fmt.Sprintf("policies[%d]: policy-type %q", i, clip(p.Policy.Type)))
		}
		if p.Policy.Domain == "" {
			errs = append(errs, fmt.Sprintf("policies[%d]: no policy-domain", i))
		}
		if p.Summary.Successful < 0 || p.Summary.Failed < 0 {
			errs = append(errs, fmt.Sprintf("policies[%d]: negative session count", i))
		}
		for j, f := range p.FailureDetails {
			if f.ResultType == "" {
				errs = append(errs, fmt.Sprintf("policies[%d].failure-details[%d]: no result-type", i, j))
			}
			if f.FailedSessionCount < 0 {
				errs = append(errs, fmt.Sprintf("policies[%d].failure-details[%d]: negative failed-session-count", i, j))
			}
		}
	}
	if len(errs) > 0 {
		return &rep, fmt.Errorf("invalid report: %s", strings.Join(errs, "; "))
	}
	return &rep, nil
}

// KnownResultType says whether t is one of RFC 8460 §4.3's result types.
func KnownResultType(t string) bool { return resultTypes[t] }

// Summary adds reports up per policy.
type Summary struct {
	Schema   string           `json:"schema"`
	Reports  []ReportInfo     `json:"reports"`
	Policies []*PolicySummary `json:"policies"`
}

// SummarySchema identifies `starttls tlsrpt --json` output.
const SummarySchema = "starttls.tlsrpt/v1"

// ReportInfo is one file read.
type ReportInfo struct {
	File         string    `json:"file"`
	Organization string    `json:"organization,omitempty"`
	ReportID     string    `json:"report_id,omitempty"`
	Start        time.Time `json:"start,omitempty"`
	End          time.Time `json:"end,omitempty"`
	Error        string    `json:"error,omitempty"`
}

// PolicySummary is the totals for one policy domain and type.
type PolicySummary struct {
	Domain     string `json:"policy_domain"`
	Type       string `json:"policy_type"`
	Successful int64  `json:"successful_sessions"`
	Failed     int64  `json:"failed_sessions"`
	// Failures counts failed sessions by result type.
	Failures []FailureCount `json:"failures"`
	// Reporters are the organizations that reported on this policy.
	Reporters []string `json:"reporters"`
}

// FailureCount is the sessions of one result type, with the MX hosts seen.
type FailureCount struct {
	ResultType string   `json:"result_type"`
	Sessions   int64    `json:"sessions"`
	Known      bool     `json:"known"` // an RFC 8460 §4.3 result type
	MXHosts    []string `json:"mx_hosts,omitempty"`
}

// Summarize adds reports up; files with errors are listed, not counted.
func Summarize(files []string, reps []*AggregateReport, errs []error) *Summary {
	s := &Summary{Schema: SummarySchema, Reports: []ReportInfo{}, Policies: []*PolicySummary{}}
	type key struct{ domain, typ string }
	byKey := map[key]*PolicySummary{}
	fails := map[key]map[string]*FailureCount{}
	reporters := map[key]map[string]bool{}
	for i, rep := range reps {
		info := ReportInfo{File: files[i]}
		if errs[i] != nil {
			info.Error = errs[i].Error()
		}
		if rep != nil {
			info.Organization, info.ReportID = rep.OrganizationName, rep.ReportID
			info.Start, info.End = rep.DateRange.Start, rep.DateRange.End
		}
		s.Reports = append(s.Reports, info)
		if errs[i] != nil || rep == nil {
			continue
		}
		for _, p := range rep.Policies {
			k := key{strings.ToLower(p.Policy.Domain), p.Policy.Type}
			ps := byKey[k]
			if ps == nil {
				ps = &PolicySummary{Domain: k.domain, Type: k.typ, Failures: []FailureCount{}, Reporters: []string{}}
				byKey[k], fails[k], reporters[k] = ps, map[string]*FailureCount{}, map[string]bool{}
				s.Policies = append(s.Policies, ps)
			}
			ps.Successful += p.Summary.Successful
			ps.Failed += p.Summary.Failed
			reporters[k][rep.OrganizationName] = true
			for _, f := range p.FailureDetails {
				fc := fails[k][f.ResultType]
				if fc == nil {
					fc = &FailureCount{ResultType: f.ResultType, Known: KnownResultType(f.ResultType)}
					fails[k][f.ResultType] = fc
				}
				fc.Sessions += f.FailedSessionCount
				if h := f.ReceivingMXHostname; h != "" && !contains(fc.MXHosts, h) && len(fc.MXHosts) < 20 {
					fc.MXHosts = append(fc.MXHosts, h)
				}
			}
		}
	}
	for k, ps := range byKey {
		for _, fc := range fails[k] {
			sort.Strings(fc.MXHosts)
			ps.Failures = append(ps.Failures, *fc)
		}
		sort.Slice(ps.Failures, func(i, j int) bool {
			if ps.Failures[i].Sessions != ps.Failures[j].Sessions {
				return ps.Failures[i].Sessions > ps.Failures[j].Sessions
			}
			return ps.Failures[i].ResultType < ps.Failures[j].ResultType
		})
		for o := range reporters[k] {
			ps.Reporters = append(ps.Reporters, o)
		}
		sort.Strings(ps.Reporters)
	}
	sort.Slice(s.Policies, func(i, j int) bool {
		a, b := s.Policies[i], s.Policies[j]
		if a.Domain != b.Domain {
			return a.Domain < b.Domain
		}
		return a.Type < b.Type
	})
	return s
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
