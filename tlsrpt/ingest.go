package tlsrpt

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Collector takes reports from any transport, stores the valid ones,
// quarantines the rest and tells the alerter.
type Collector struct {
	Store *Store
	// Alerts, when set, is asked after each newly stored report.
	Alerts *Alerter
	Logger *slog.Logger
	// Now is the clock (tests set it). Default time.Now.
	Now func() time.Time
}

// Outcome is what became of one report payload.
type Outcome struct {
	ReportID     string `json:"report_id,omitempty"`
	Organization string `json:"organization,omitempty"`
	Stored       bool   `json:"stored"`
	Duplicate    bool   `json:"duplicate"`
	Quarantined  bool   `json:"quarantined"`
	Reason       string `json:"reason,omitempty"`
}

func (c *Collector) now() time.Time {
	if c.Now != nil {
		return c.Now()
	}
	return time.Now()
}

func (c *Collector) log() *slog.Logger {
	if c.Logger != nil {
		return c.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// IngestPayload takes one report as delivered (gzip or JSON). An invalid
// report is quarantined and reported in the Outcome (err stays nil); err
// is for storage failures, after which the sender should retry.
func (c *Collector) IngestPayload(ctx context.Context, payload []byte, src Source) (Outcome, error) {
	rep, js, err := Decode(payload)
	if err != nil {
		return c.quarantine(ctx, payload, src, err)
	}
	o := Outcome{ReportID: rep.ReportID, Organization: rep.OrganizationName}
	stored, err := c.Store.Save(ctx, rep, js, src, c.now())
	if err != nil {
		return o, fmt.Errorf("tlsrpt: %w", err)
	}
	o.Stored, o.Duplicate = stored, !stored
	c.log().Info("tlsrpt report", "source", src.String(), "organization", rep.OrganizationName, "report_id", rep.ReportID, "stored", stored)
	if stored && c.Alerts != nil {
		if err := c.Alerts.Check(ctx, c.Store, rep); err != nil {
			c.log().Warn("tlsrpt alert", "err", err)
		}
	}
	return o, nil
}

func (c *Collector) quarantine(ctx context.Context, raw []byte, src Source, reason error) (Outcome, error) {
	o := Outcome{Quarantined: true, Reason: reason.Error()}
	c.log().Warn("tlsrpt quarantined", "source", src.String(), "reason", o.Reason)
	if err := c.Store.Quarantine(ctx, raw, src, o.Reason, c.now()); err != nil {
		return o, fmt.Errorf("tlsrpt: quarantine: %w", err)
	}
	return o, nil
}

// IngestMessage takes one mail message. A message that is not a TLS-RPT
// report gives an error wrapping ErrNotReport and is not kept; a broken
// report message is quarantined whole; otherwise each report part gives
// one Outcome.
func (c *Collector) IngestMessage(ctx context.Context, raw []byte, src Source) ([]Outcome, error) {
	m, err := ParseMessage(raw)
	if errors.Is(err, ErrNotReport) {
		return nil, err
	}
	if err != nil {
		o, qerr := c.quarantine(ctx, raw, src, err)
		return []Outcome{o}, qerr
	}
	if m.MessageID != "" {
		src.Detail = joinDetail(src.Detail, m.MessageID)
	}
	var outs []Outcome
	for _, p := range m.Reports {
		o, err := c.IngestPayload(ctx, p.Data, src)
		if err != nil {
			return outs, err
		}
		outs = append(outs, o)
	}
	return outs, nil
}

func joinDetail(a, b string) string {
	if a == "" {
		return b
	}
	return a + " " + b
}

// Verdict sums up outcomes: all stored or duplicates (ok), none valid, or
// some of each.
func Verdict(outs []Outcome) (ok, bad int, reason string) {
	for _, o := range outs {
		if o.Quarantined {
			bad++
			if reason == "" {
				reason = o.Reason
			}
		} else {
			ok++
		}
	}
	return ok, bad, reason
}
