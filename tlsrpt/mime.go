package tlsrpt

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"strings"
)

// ErrNotReport is a message that is not a TLS-RPT report at all (no
// multipart/report with report-type=tlsrpt and no tlsrpt part): the rua
// address refuses it without keeping it.
var ErrNotReport = errors.New("not a TLS-RPT report message")

// MaxMessageBytes caps one mail message (SMTP SIZE and the DATA cap): a
// gzipped report of MaxReportBytes is far smaller, base64 adds a third.
const MaxMessageBytes = 15 << 20

// maxParts bounds the MIME parts looked at in one message.
const maxParts = 16

// Message is what a report mail carries (RFC 8460 §5.3).
type Message struct {
	From, Subject, MessageID string
	// ReportDomain is the TLS-Report-Domain header (the policy domain the
	// sender says it reports on); Submitter is TLS-Report-Submitter.
	ReportDomain, Submitter string
	// Reports are the payloads of the application/tlsrpt+gzip and
	// application/tlsrpt+json parts, transfer encoding undone.
	Reports []Payload
}

// Payload is one report attachment.
type Payload struct {
	ContentType string
	Filename    string
	Data        []byte
}

// ParseMessage extracts the report parts of an RFC 5322 message. A message
// that is not multipart/report; report-type=tlsrpt gives ErrNotReport; one
// that claims to be a report but whose MIME structure is broken, or has no
// report part, gives an error wrapping ErrInvalid.
func ParseMessage(raw []byte) (*Message, error) {
	if len(raw) > MaxMessageBytes {
		return nil, fmt.Errorf("%w: message larger than %d bytes", ErrInvalid, MaxMessageBytes)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: message header: %v", ErrNotReport, err)
	}
	h := msg.Header
	dec := new(mime.WordDecoder)
	decode := func(v string) string {
		if d, err := dec.DecodeHeader(v); err == nil {
			v = d
		}
		return clipHeader(v)
	}
	m := &Message{From: decode(h.Get("From")), Subject: decode(h.Get("Subject")), MessageID: clipHeader(h.Get("Message-Id")),
		ReportDomain: clipHeader(strings.TrimSpace(h.Get("Tls-Report-Domain"))), Submitter: clipHeader(strings.TrimSpace(h.Get("Tls-Report-Submitter")))}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("%w: Content-Type: %v", ErrNotReport, err)
	}
	if mt != "multipart/report" || !strings.EqualFold(params["report-type"], "tlsrpt") {
		return nil, fmt.Errorf("%w: Content-Type is %s (report-type %q), want multipart/report; report-type=tlsrpt", ErrNotReport, mt, clip(params["report-type"]))
	}
	if params["boundary"] == "" {
		return nil, fmt.Errorf("%w: multipart/report without a boundary", ErrInvalid)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		if i >= maxParts {
			return nil, fmt.Errorf("%w: more than %d MIME parts", ErrInvalid, maxParts)
		}
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: MIME: %v", ErrInvalid, err)
		}
		pt, pparams, err := mime.ParseMediaType(part.Header.Get("Content-Type"))
		if err != nil || (pt != "application/tlsrpt+gzip" && pt != "application/tlsrpt+json") {
			continue // the human-readable text/plain part, or anything else
		}
		var body io.Reader = part
		switch cte := strings.ToLower(strings.TrimSpace(part.Header.Get("Content-Transfer-Encoding"))); cte {
		case "base64":
			body = base64.NewDecoder(base64.StdEncoding, part)
		case "", "7bit", "8bit", "binary":
			// quoted-printable is undone by multipart.Reader itself
		default:
			return nil, fmt.Errorf("%w: part %d: Content-Transfer-Encoding %q", ErrInvalid, i, clip(cte))
		}
		data, err := io.ReadAll(io.LimitReader(body, MaxMessageBytes+1))
		if err != nil {
			return nil, fmt.Errorf("%w: part %d (%s): %v", ErrInvalid, i, pt, err)
		}
		name := pparams["name"]
		if _, dp, err := mime.ParseMediaType(part.Header.Get("Content-Disposition")); err == nil && dp["filename"] != "" {
			name = dp["filename"]
		}
		m.Reports = append(m.Reports, Payload{ContentType: pt, Filename: clipHeader(name), Data: data})
	}
	if len(m.Reports) == 0 {
		return nil, fmt.Errorf("%w: multipart/report without an application/tlsrpt+gzip or +json part", ErrInvalid)
	}
	return m, nil
}

// clipHeader bounds header values kept for the record.
func clipHeader(s string) string {
	if len(s) > 512 {
		return s[:512]
	}
	return s
}
