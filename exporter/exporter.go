package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

// Options configure an Exporter.
type Options struct {
	// Config holds the modules; nil means DefaultConfig.
	Config *Config
	// DefaultModule is used when a request names none. Default: "quick"
	// when configured, else the only module; with neither, a request must
	// name its module.
	DefaultModule string
	// MaxConcurrent bounds probes running at once; a probe that cannot
	// start before its deadline is answered 503. Default 8.
	MaxConcurrent int
	// TimeoutOffset is taken off Prometheus's scrape timeout so that the
	// answer arrives before Prometheus gives up. Default 500 ms.
	TimeoutOffset time.Duration
	// MaxProbeTime bounds a probe without a scrape-timeout header and caps
	// one with it. Default 60 s.
	MaxProbeTime time.Duration
	// Allow restricts the targets; nil allows any.
	Allow *AllowList
	// Logger gets one line per failed or refused probe; nil discards.
	Logger *slog.Logger
	// Now is the clock for certificate dates; default time.Now.
	Now func() time.Time
}

// Exporter serves /probe and /metrics.
type Exporter struct {
	o   Options
	sem chan struct{}

	reg      *prometheus.Registry
	probes   *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inFlight prometheus.Gauge
}

// New builds an exporter and its own registry (Go and process
// collectors, probe counters).
func New(o Options) (*Exporter, error) {
	if o.Config == nil {
		o.Config = DefaultConfig()
	}
	if o.DefaultModule == "" {
		if _, ok := o.Config.Modules[check.Quick]; ok {
			o.DefaultModule = check.Quick
		} else if names := o.Config.Names(); len(names) == 1 {
			o.DefaultModule = names[0]
		}
	}
	if _, ok := o.Config.Modules[o.DefaultModule]; !ok && o.DefaultModule != "" {
		return nil, fmt.Errorf("default module %q is not configured (have %v)", o.DefaultModule, o.Config.Names())
	}
	if o.MaxConcurrent <= 0 {
		o.MaxConcurrent = 8
	}
	if o.TimeoutOffset <= 0 {
		o.TimeoutOffset = 500 * time.Millisecond
	}
	if o.MaxProbeTime <= 0 {
		o.MaxProbeTime = 60 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	e := &Exporter{o: o, sem: make(chan struct{}, o.MaxConcurrent), reg: prometheus.NewRegistry()}
	e.probes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "starttls_exporter_probes_total", Help: "Probes answered, by module and result (success, failure, refused, busy, bad-request).",
	}, []string{"module", "result"})
	e.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "starttls_exporter_probe_duration_seconds", Help: "Duration of the probes that ran, by module.",
		Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60},
	}, []string{"module"})
	e.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{Name: "starttls_exporter_probes_in_flight", Help: "Probes running now."})
	e.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		e.probes, e.duration, e.inFlight)
	return e, nil
}

// Handler serves /probe, /metrics and a short index on /.
func (e *Exporter) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/probe", e.probe)
	mux.Handle("/metrics", promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintf(w, "starttls exporter\n\n/probe?target=smtp://mx.example.org&module=NAME  modules: %v\n/metrics  the exporter's own metrics\n", e.o.Config.Names())
	})
	return mux
}

// deadline is how long a probe may take: the scrape timeout Prometheus
// sends, less the offset, capped by MaxProbeTime.
func (e *Exporter) deadline(r *http.Request) (time.Duration, error) {
	d := e.o.MaxProbeTime
	if h := r.Header.Get("X-Prometheus-Scrape-Timeout-Seconds"); h != "" {
		s, err := strconv.ParseFloat(h, 64)
		if err != nil || s <= 0 || s > 1e6 {
			return 0, fmt.Errorf("bad X-Prometheus-Scrape-Timeout-Seconds %q", h)
		}
		d = min(d, time.Duration(s*float64(time.Second))-e.o.TimeoutOffset)
		if d < 100*time.Millisecond {
			d = 100 * time.Millisecond
		}
	}
	return d, nil
}

func (e *Exporter) fail(w http.ResponseWriter, module, result string, code int, err error) {
	e.probes.WithLabelValues(module, result).Inc()
	e.o.Logger.Info("probe refused", "module", module, "code", code, "err", err)
	http.Error(w, err.Error(), code)
}

func (e *Exporter) probe(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("module")
	if name == "" {
		name = e.o.DefaultModule
	}
	if name == "" {
		e.fail(w, "", "bad-request", http.StatusBadRequest, fmt.Errorf("module parameter is missing (have %v)", e.o.Config.Names()))
		return
	}
	m, ok := e.o.Config.Modules[name]
	if !ok {
		// The label takes only configured names: a client must not be able
		// to grow the counter's cardinality.
		e.fail(w, "", "bad-request", http.StatusBadRequest, fmt.Errorf("unknown module %q (have %v)", name, e.o.Config.Names()))
		return
	}
	raw := q.Get("target")
	if raw == "" {
		e.fail(w, name, "bad-request", http.StatusBadRequest, errors.New("target parameter is missing"))
		return
	}
	t, err := starttls.ParseTarget(raw, starttls.Protocol(m.Protocol))
	if err != nil {
		e.fail(w, name, "bad-request", http.StatusBadRequest, err)
		return
	}
	limit, err := e.deadline(r)
	if err != nil {
		e.fail(w, name, "bad-request", http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), limit)
	defer cancel()
	if err := e.o.Allow.Check(ctx, t.Host); err != nil {
		e.fail(w, name, "refused", http.StatusForbidden, err)
		return
	}
	select {
	case e.sem <- struct{}{}:
	case <-ctx.Done():
		e.fail(w, name, "busy", http.StatusServiceUnavailable, fmt.Errorf("%d probes running: none finished before the deadline", cap(e.sem)))
		return
	}
	e.inFlight.Inc()
	start := time.Now()
	rep := check.Run(ctx, t, e.checkOptions(m, limit))
	elapsed := time.Since(start)
	e.inFlight.Dec()
	<-e.sem

	var failOn *check.Severity
	if m.FailOn != "" {
		failOn = &m.threshold
	}
	result := "failure"
	if Success(rep, failOn) {
		result = "success"
	} else {
		e.o.Logger.Info("probe failed", "module", name, "target", rep.Target, "status", rep.Status, "err", rep.Error)
	}
	e.probes.WithLabelValues(name, result).Inc()
	e.duration.WithLabelValues(name).Observe(elapsed.Seconds())
	promhttp.HandlerFor(ReportRegistry(rep, failOn, elapsed, e.o.Now()), promhttp.HandlerOpts{}).ServeHTTP(w, r)
}

// checkOptions turns a module into check options; no phase may outlast
// the probe.
func (e *Exporter) checkOptions(m *Module, limit time.Duration) check.Options {
	o := check.Options{
		Roots: m.roots, ServerName: m.ServerName, Timeout: min(m.Timeout, limit), Depth: m.Depth,
		LocalName: m.LocalName, Now: e.o.Now,
	}
	if e.o.Allow != nil {
		o.Dial = e.o.Allow.Dial(&net.Dialer{})
	}
	return o
}
