package scan

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// resumeChunk is how many targets the reader looks up in the sink at once
// under Resume.
const resumeChunk = 256

// hold counts a target taken into memory; release when it is written or dropped.
func (e *engine) hold(n int64) {
	v := e.held.Add(n)
	raise(&e.maxHeld, v)
}

func raise(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}

// read streams the input into jobs: shard filter, then (under Resume) a
// look-up of each chunk in the sink. A job is a target or, in an MX
// scan, a domain; its key is Line.Key.
func (e *engine) read(ctx context.Context, in *Reader, jobs chan<- job) error {
	var chunk []Line
	send := func(l Line) bool {
		select {
		case jobs <- job{t: l.Target, domain: l.Domain}:
			return true
		case <-ctx.Done():
			return false
		}
	}
	flush := func() error {
		if len(chunk) == 0 {
			return nil
		}
		keys := make([]string, len(chunk))
		for i, l := range chunk {
			keys[i] = l.Key()
		}
		stored, err := e.sink.Stored(ctx, keys)
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		for i, l := range chunk {
			if stored[keys[i]] {
				e.sum.Resumed++
				e.hold(-1)
				continue
			}
			if !send(l) {
				return nil
			}
		}
		chunk = chunk[:0]
		return nil
	}
	for {
		l, err := in.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return flush()
			}
			return fmt.Errorf("input: %w", err)
		}
		if ctx.Err() != nil {
			return nil
		}
		if l.Err != nil {
			e.sum.BadLines++
			if e.o.BadLine != nil {
				e.o.BadLine(l)
			}
			continue
		}
		e.sum.Read++
		if !e.o.Shard.Contains(l.Key()) {
			e.sum.OtherShards++
			continue
		}
		e.hold(1)
		if !e.o.Resume {
			if !send(l) {
				return nil
			}
			continue
		}
		chunk = append(chunk, l)
		if len(chunk) >= resumeChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

// retryable are the classes worth another attempt: the peer may have
// been busy.
func retryable(s starttls.Status) bool {
	switch s {
	case starttls.StatusConnectTimeout, StatusGreetingTimeout, starttls.StatusTimeout, starttls.StatusClosed, starttls.StatusError:
		return true
	}
	return false
}

// scanGroups are the key exchange groups a scan's sessions offer: the
// classical ones (see check.Options.Groups). A hybrid post-quantum share
// costs the scanner and every target ~0.1 ms of CPU per session and
// tells the scan nothing it records.
var scanGroups = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521}

// process checks one target within its deadline and always returns a record.
func (e *engine) process(ctx context.Context, t starttls.Target) Record {
	start := time.Now()
	tctx, cancel := context.WithTimeout(ctx, e.o.TargetTimeout)
	defer cancel()
	fail := func(ip string, s starttls.Status, err error) Record {
		rec := newRecord(t, ip, nil)
		rec.Status, rec.Error, rec.Grade = s, err.Error(), "F"
		rec.Timings.TotalMS = ms(time.Since(start))
		return rec
	}
	ip, err := e.dns.lookup(tctx, t.Host)
	if err != nil {
		if tctx.Err() != nil {
			return fail("", starttls.StatusTimeout, fmt.Errorf("dns %s: %w", t.Host, err))
		}
		if ae := (*net.AddrError)(nil); errors.As(err, &ae) {
			return fail("", starttls.StatusError, err)
		}
		return fail("", StatusDNS, fmt.Errorf("dns %s: %w", t.Host, err))
	}
	subnet := Subnet(ip)
	if err := e.subnets.acquire(tctx, subnet); err != nil {
		return fail(ip.String(), starttls.StatusTimeout, fmt.Errorf("waiting for a slot in %s: %w", subnet, err))
	}
	defer e.subnets.release(subnet)

	o := check.Options{Roots: e.o.Roots, Timeout: e.o.Timeout, Depth: e.o.Depth, LocalName: e.o.LocalName, ServerName: t.Host, Groups: scanGroups}
	o.LocalAddr = e.src.pick(ip)
	o.Dial = e.dialer(tctx, o.LocalAddr)
	at := starttls.Target{Protocol: t.Protocol, Host: ip.String(), Port: t.Port}
	var r *check.Report
	attempts := 0
	for attempts <= e.o.Retries {
		attempts++
		r = e.attempt(tctx, at, o)
		if !retryable(r.Status) || tctx.Err() != nil {
			break
		}
		select { // a short pause before a retry
		case <-time.After(time.Duration(attempts) * 100 * time.Millisecond):
		case <-tctx.Done():
		}
	}
	r.Target, r.Host = Key(t), t.Host
	rec := newRecord(t, ip.String(), r)
	rec.Attempts = attempts
	rec.Timings.TotalMS = ms(time.Since(start))
	return rec
}

// attempt runs one check; should the check overrun its deadline by more
// than a grace period, the target is given up as a timeout so that it
// cannot stall the scan (the check's goroutine ends on its own later).
func (e *engine) attempt(ctx context.Context, t starttls.Target, o check.Options) *check.Report {
	raise(&e.maxInFlight, e.inFlight.Add(1))
	defer e.inFlight.Add(-1)
	done := make(chan *check.Report, 1)
	go func() { done <- e.o.Check(ctx, t, o) }()
	select {
	case r := <-done:
		return r
	case <-ctx.Done():
	}
	select {
	case r := <-done:
		return r
	case <-time.After(2 * e.o.Timeout):
		return &check.Report{Schema: check.Schema, Target: t.String(), Protocol: string(t.Protocol), Host: t.Host, Port: t.Port,
			Depth: o.Depth, Status: starttls.StatusTimeout, Error: "target deadline passed: " + ctx.Err().Error(), Grade: "F", Findings: []check.Finding{}}
	}
}

// write batches records into the sink. The records of one job (an MX
// scan's domain) go into one batch: a domain is stored whole or not at all.
func (e *engine) write(ctx context.Context, results <-chan []Record) error {
	batch := make([]Record, 0, e.o.BatchSize)
	var jobs []starttls.Status // per job in the batch: the status the progress shows
	tick := time.NewTicker(e.o.FlushInterval)
	defer tick.Stop()
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		// A canceled scan still stores what it finished.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := e.sink.Write(wctx, batch); err != nil {
			return fmt.Errorf("sink: %w", err)
		}
		for _, r := range batch {
			e.sum.Scanned++
			e.sum.Attempts += int64(r.Attempts)
			e.sum.Statuses[r.Status]++
			if r.Cached {
				e.sum.MXCached++
			}
		}
		for _, s := range jobs {
			if e.o.MX {
				e.sum.Domains++
			}
			e.o.Progress.Done(s)
		}
		e.hold(-int64(len(jobs)))
		clear(batch)
		batch, jobs = batch[:0], jobs[:0]
		return nil
	}
	for {
		select {
		case rs, ok := <-results:
			if !ok {
				return flush()
			}
			if len(rs) == 0 { // not made by the workers; keep the count right
				e.hold(-1)
				continue
			}
			batch = append(batch, rs...)
			jobs = append(jobs, rs[0].Status)
			if len(batch) >= e.o.BatchSize {
				if err := flush(); err != nil {
					return err
				}
			}
		case <-tick.C:
			if err := flush(); err != nil {
				return err
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
