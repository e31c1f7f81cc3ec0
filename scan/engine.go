package scan

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// CheckFunc checks one target; check.Run by default. Tests substitute
// instrumented ones.
type CheckFunc func(ctx context.Context, t starttls.Target, o check.Options) *check.Report

// Options configure a scan. The zero value scans quickly with 100
// workers, 5-second phases, one retry and no rate limit.
type Options struct {
	Depth string // check.Quick (default), check.Session or check.Full
	// Concurrency is the workers: targets checked at once. Default 100;
	// with a Rate, Rate × Timeout (see workersFor).
	Concurrency int
	Rate        float64       // connections opened per second, every probe's included (token bucket); 0: unlimited
	Burst       int           // token bucket size; default 1
	PerSubnet   int           // at most this many targets per /24 (IPv6 /48) at once; 0: unlimited
	Timeout     time.Duration // each phase of each connection. Default 5 s
	Retries     int           // extra attempts after a timeout or a dropped connection. Default 0
	// TargetTimeout bounds one target, all attempts and waits included.
	// Default (Retries+1) × 8 × Timeout.
	TargetTimeout time.Duration
	Roots         *x509.CertPool // trust for the certificate verdict; nil: system pool
	LocalName     string         // EHLO name
	Shard         Shard          // the part of the input to scan
	Resume        bool           // skip targets the sink already holds
	Resolver      *net.Resolver  // nil: net.DefaultResolver
	// SourceIP is the local address every connection comes from (a
	// scanner with several); names resolve to its family only. Zero: the
	// system chooses.
	SourceIP netip.Addr
	// SourceRange, when valid, is where connections come from instead:
	// each target gets the next of its addresses (at most 65,536 of them),
	// so that ports do not run out at high rates. Names resolve to its
	// family only. Without either, loopback targets get addresses of
	// 127.0.0.0/16 in turn, for the same reason.
	SourceRange   netip.Prefix
	BatchSize     int           // records per sink transaction. Default 256
	FlushInterval time.Duration // longest a record waits for its batch. Default 1 s
	Progress      Progress      // nil: none
	Check         CheckFunc     // nil: check.Run
	// BadLine is told about input lines that are not targets; nil: counted only.
	BadLine func(Line)

	// MX makes every input line a mail domain (Run reads with
	// NewDomainReader): the domain's MX hosts, at most MaxMXHosts by
	// preference, are each checked as smtp://HOST:MXPort. Keys are
	// DomainKey(domain), for Shard and Resume alike.
	MX bool
	// MXPort is the port of the MX hosts; default 25 (others are for
	// tests and non-standard setups).
	MXPort int
	// MXCache bounds the MX hosts whose records are kept, so that a host
	// shared by many domains is checked once per scan. Default 65536.
	MXCache int
}

func (o Options) withDefaults() Options {
	if o.Depth == "" {
		o.Depth = check.Quick
	}
	if o.Burst <= 0 {
		o.Burst = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = workersFor(o.Rate, o.Timeout, fdLimit())
	}
	if o.Retries < 0 {
		o.Retries = 0
	}
	if o.TargetTimeout <= 0 {
		o.TargetTimeout = time.Duration(o.Retries+1) * 8 * o.Timeout
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 256
	}
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.Check == nil {
		o.Check = check.Run
	}
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	if o.MXPort <= 0 {
		o.MXPort = 25
	}
	if o.MXCache <= 0 {
		o.MXCache = 65536
	}
	return o
}

// Progress is told as targets (MX scans: domains) finish.
type Progress interface {
	Done(s starttls.Status)
	Finish()
}

type nopProgress struct{}

func (nopProgress) Done(starttls.Status) {}
func (nopProgress) Finish()              {}

// Summary is what a scan did.
type Summary struct {
	Read        int64                     `json:"read"`                // targets (MX: domains) read from the input
	BadLines    int64                     `json:"bad_lines"`           // lines that are not targets
	OtherShards int64                     `json:"other_shards"`        // targets (MX: domains) left to other shards
	Resumed     int64                     `json:"resumed"`             // targets (MX: domains) skipped: already stored
	Scanned     int64                     `json:"scanned"`             // records stored (MX: one per MX host or domain-level outcome)
	Attempts    int64                     `json:"attempts"`            // checks run, retries included
	Statuses    map[starttls.Status]int64 `json:"statuses"`            // scanned targets per outcome
	Elapsed     time.Duration             `json:"elapsed_ns"`          // wall time
	MaxInFlight int64                     `json:"max_in_flight"`       // most checks running at once
	MaxHeld     int64                     `json:"max_held"`            // most targets (MX: domains) held in memory at once
	Domains     int64                     `json:"domains,omitempty"`   // MX: domains stored
	MXCached    int64                     `json:"mx_cached,omitempty"` // MX: host records copied from the cache, not checked again
	// MaxPerSubnet is the most checks seen at once in one /24 (only
	// tracked when PerSubnet is set).
	MaxPerSubnet int `json:"max_per_subnet,omitempty"`
}

// Rate is scanned targets per second.
func (s Summary) Rate() float64 {
	if s.Elapsed <= 0 {
		return 0
	}
	return float64(s.Scanned) / s.Elapsed.Seconds()
}

// String is a one-line human summary, statuses by count.
func (s Summary) String() string {
	type kv struct {
		k starttls.Status
		v int64
	}
	var kvs []kv
	for k, v := range s.Statuses {
		kvs = append(kvs, kv{k, v})
	}
	sort.Slice(kvs, func(i, j int) bool {
		if kvs[i].v != kvs[j].v {
			return kvs[i].v > kvs[j].v
		}
		return kvs[i].k < kvs[j].k
	})
	var parts []string
	for _, e := range kvs {
		parts = append(parts, fmt.Sprintf("%s %d", e.k, e.v))
	}
	mx := ""
	if s.Domains > 0 {
		mx = fmt.Sprintf(" of %d domains (%d cached)", s.Domains, s.MXCached)
	}
	return fmt.Sprintf("scanned %d targets%s in %s (%.1f/s): %s; read %d, other shards %d, resumed %d, bad lines %d",
		s.Scanned, mx, s.Elapsed.Round(time.Millisecond), s.Rate(), strings.Join(parts, ", "), s.Read, s.OtherShards, s.Resumed, s.BadLines)
}

// engine is one scan in progress.
type engine struct {
	o           Options
	sink        Sink
	limiter     *rate.Limiter
	subnets     *subnetLimiter
	dns         *resolver
	src         *sources
	mx          *hostCache
	inFlight    atomic.Int64
	held        atomic.Int64
	maxInFlight atomic.Int64
	maxHeld     atomic.Int64
	sum         Summary // counters written by the reader, statuses by the writer
}

// job is one target or, in an MX scan, one domain.
type job struct {
	t      starttls.Target
	domain string
}

// Run scans the targets read from in and writes one record per target to
// sink (with Options.MX, in holds mail domains: see Options.MX). It returns when the input is exhausted and every record is
// stored, or on the first sink or input error, or when ctx ends (records
// finished by then are stored).
func Run(ctx context.Context, in io.Reader, proto starttls.Protocol, sink Sink, o Options) (Summary, error) {
	if o.MX {
		return RunReader(ctx, NewDomainReader(in), sink, o)
	}
	return RunReader(ctx, NewReader(in, proto), sink, o)
}

// RunReader is Run on a Reader: a NewDomainReader one if and only if
// Options.MX.
func RunReader(ctx context.Context, in *Reader, sink Sink, o Options) (Summary, error) {
	if in.domains != o.MX {
		return Summary{}, errors.New("scan: Options.MX needs a domain reader (NewDomainReader), and only it")
	}
	o = o.withDefaults()
	family := o.SourceIP
	if o.SourceRange.IsValid() {
		family = o.SourceRange.Addr()
	}
	e := &engine{o: o, sink: sink, subnets: newSubnetLimiter(o.PerSubnet), dns: newResolver(o.Resolver, family, o.Timeout, 4096),
		src: newSources(o.SourceIP, o.SourceRange)}
	if o.MX {
		e.mx = newHostCache(o.MXCache)
	}
	e.sum.Statuses = map[starttls.Status]int64{}
	if o.PerSubnet > 0 {
		e.subnets.max = map[netip.Prefix]int{}
	}
	if o.Rate > 0 {
		e.limiter = rate.NewLimiter(rate.Limit(o.Rate), o.Burst)
	}
	start := time.Now()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	jobs := make(chan job, o.Concurrency)
	results := make(chan []Record, o.Concurrency) // the records of one job
	var readErr error
	go func() {
		defer close(jobs)
		if err := e.read(ctx, in, jobs); err != nil {
			readErr = err
			cancel(err)
		}
	}()
	var wg sync.WaitGroup
	for range o.Concurrency {
		wg.Go(func() {
			for j := range jobs {
				if j.domain != "" {
					results <- e.processDomain(ctx, j.domain)
					continue
				}
				results <- []Record{e.process(ctx, j.t)}
			}
		})
	}
	go func() { wg.Wait(); close(results) }()
	writeErr := e.write(ctx, results)
	if writeErr != nil {
		cancel(writeErr)
		for range results { // let the workers finish
		}
	}
	o.Progress.Finish()
	e.sum.Elapsed = time.Since(start)
	e.sum.MaxInFlight = e.maxInFlight.Load()
	e.sum.MaxHeld = e.maxHeld.Load()
	if e.subnets.max != nil {
		for _, v := range e.subnets.max {
			e.sum.MaxPerSubnet = max(e.sum.MaxPerSubnet, v)
		}
	}
	switch {
	case writeErr != nil:
		return e.sum, writeErr
	case readErr != nil:
		return e.sum, readErr
	}
	return e.sum, context.Cause(ctx)
}
