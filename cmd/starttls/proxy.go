package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls/proxy"
)

type proxyFlags struct {
	spec       proxy.Spec
	config     string
	checkOnly  bool
	logFormat  string
	logLevel   string
	metrics    string
	maxTotal   int
	drain      time.Duration
	watchEvery time.Duration
}

func newProxyCmd() *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy [--config FILE | --mode MODE --proto PROTO --listen ADDR --backend ADDR ...]",
		Short: "STARTTLS and implicit TLS in front of a plaintext server, or STARTTLS towards a remote one",
		Long: `proxy relays connections between clients and a backend:

  terminate  clients connect in plaintext and upgrade with STARTTLS (the proxy
             speaks the pre-TLS dialogue: greeting, capabilities, STARTTLS);
             inside TLS it connects to the plaintext backend, consumes its
             greeting and relays, removing STARTTLS (and IMAP LOGINDISABLED)
             from what the backend advertises.
  implicit   TLS from the first byte (smtps 465, imaps 993, pop3s 995), then
             as terminate, the backend's greeting relayed.
  originate  plaintext clients on a local port; the proxy upgrades towards the
             remote server with STARTTLS, verifies it (--ca, --servername,
             --pin) and relays, after its own greeting.

Pipelined commands after STARTTLS never reach the backend. --proxy-protocol
sends a PROXY v2 header to the backend (Postfix smtpd_upstream_proxy_protocol =
haproxy, Dovecot haproxy_trusted_networks). Certificates are reloaded on SIGHUP
and when their files change; SIGTERM/SIGINT stop accepting and drain sessions
for up to --drain-timeout. One listener from flags, or many from --config (YAML,
see docs/proxy.md).`,
		Example: `  starttls proxy --mode terminate --proto smtp --listen 127.0.0.1:2525 \
      --backend 127.0.0.1:10025 --cert cert.pem --key key.pem
  starttls proxy --mode implicit --proto imap --listen :993 --backend 127.0.0.1:143 \
      --cert cert.pem --key key.pem --proxy-protocol --metrics 127.0.0.1:9100
  starttls proxy --mode originate --proto smtp --listen 127.0.0.1:2525 \
      --backend mx.example.org:25 --ca /etc/ssl/certs/ca-certificates.crt
  starttls proxy --config /etc/starttls/proxy.yaml --log-format json
  starttls proxy --config /etc/starttls/proxy.yaml --check`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runProxy(cmd, &f) },
	}
	fl := cmd.Flags()
	s := &f.spec
	fl.StringVar(&f.config, "config", "", "YAML file with many listeners (then the listener flags are not allowed)")
	fl.BoolVar(&f.checkOnly, "check", false, "check the configuration (files, certificates) and exit")
	fl.StringVar(&s.Mode, "mode", "", "terminate, implicit or originate")
	fl.StringVar(&s.Proto, "proto", "", "protocol: "+proxy.SupportedProtocols())
	fl.StringVar(&s.Listen, "listen", "", "address to listen on (host:port)")
	fl.StringVar(&s.Backend, "backend", "", "plaintext backend (terminate, implicit) or remote server (originate), host:port")
	fl.StringVar(&s.Name, "name", "", "listener name in logs and metrics")
	fl.StringVar(&s.Cert, "cert", "", "PEM certificate chain (terminate, implicit)")
	fl.StringVar(&s.Key, "key", "", "PEM private key (terminate, implicit)")
	fl.StringVar(&s.Policy, "policy", "required", "required (nothing but the dialogue before TLS) or optional (plaintext sessions relayed too)")
	fl.StringVar(&s.Injection, "injection", "close", "bytes pipelined after STARTTLS: close the connection, or discard them (never relayed either way)")
	fl.StringVar(&s.Hostname, "hostname", "localhost", "name in the proxy's greetings")
	fl.StringArrayVar(&s.Capabilities, "capability", nil, "extra capability advertised before TLS (repeatable), e.g. \"SIZE 10240000\"")
	fl.BoolVar(&s.ProxyProtocol, "proxy-protocol", false, "send a PROXY protocol v2 header to the backend")
	fl.StringVar(&s.CA, "ca", "", "PEM CA file to verify the remote server (originate; default: system roots)")
	fl.StringVar(&s.ServerName, "servername", "", "name to verify and send as SNI (originate; default: the backend host)")
	fl.StringArrayVar(&s.Pins, "pin", nil, "sha256:BASE64 SPKI pin a certificate of the chain must match (originate; repeatable)")
	fl.StringVar(&s.LocalName, "local-name", "", "EHLO name towards the remote server (originate)")
	fl.IntVar(&s.MaxConns, "max-conns", 0, "sessions on this listener at once (0: unlimited)")
	fl.IntVar(&s.MaxPerIP, "max-per-ip", 0, "sessions from one client address at once (0: unlimited)")
	fl.DurationVar(&s.PreTLS, "pre-tls-timeout", proxy.DefaultPreTLS, "bound on each client command before TLS")
	fl.DurationVar(&s.Handshake, "handshake-timeout", proxy.DefaultHandshake, "bound on the TLS handshake")
	fl.DurationVar(&s.Connect, "connect-timeout", proxy.DefaultConnect, "bound on reaching the backend and its greeting (originate: the whole upgrade)")
	fl.DurationVar(&s.Idle, "idle-timeout", proxy.DefaultIdle, "close a session without traffic for this long")
	fl.IntVar(&f.maxTotal, "max-total", 0, "sessions on all listeners at once (0: unlimited)")
	fl.DurationVar(&f.drain, "drain-timeout", proxy.DefaultDrain, "on SIGTERM, wait this long for sessions before closing them")
	fl.DurationVar(&f.watchEvery, "watch-interval", 2*time.Second, "poll certificate files for changes this often (0: only on SIGHUP)")
	fl.StringVar(&f.logFormat, "log-format", "text", "text or json (logs go to stderr)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics on ADDR at /metrics (e.g. 127.0.0.1:9100)")
	return cmd
}

func init() { rootCmd.AddCommand(newProxyCmd()) }

// listenerFlags are the flags that describe a listener (not allowed with --config).
var listenerFlags = []string{"mode", "proto", "listen", "backend", "name", "cert", "key", "policy", "injection",
	"hostname", "capability", "proxy-protocol", "ca", "servername", "pin", "local-name", "max-conns", "max-per-ip",
	"pre-tls-timeout", "handshake-timeout", "connect-timeout", "idle-timeout"}

func runProxy(cmd *cobra.Command, f *proxyFlags) error {
	var file *proxy.File
	if f.config != "" {
		for _, n := range listenerFlags {
			if cmd.Flags().Changed(n) {
				return exitWith(exitUsage, fmt.Errorf("--%s: listener flags and --config exclude each other", n))
			}
		}
		var err error
		if file, err = proxy.LoadFile(f.config); err != nil {
			return exitWith(exitUsage, err)
		}
	} else {
		// Repeatable flags count only when given (a reset flag set may hold
		// its printed default).
		if !cmd.Flags().Changed("pin") {
			f.spec.Pins = nil
		}
		if !cmd.Flags().Changed("capability") {
			f.spec.Capabilities = nil
		}
		l, err := f.spec.Build("", nil)
		if err != nil {
			var fe *proxy.FieldError
			if errors.As(err, &fe) {
				flag := strings.ReplaceAll(strings.TrimSuffix(strings.TrimSuffix(fe.Field, "_timeout"), "_connections"), "_", "-")
				switch fe.Field {
				case "pre_tls_timeout", "handshake_timeout", "connect_timeout", "idle_timeout":
					flag = strings.ReplaceAll(fe.Field, "_", "-")
				case "max_connections":
					flag = "max-conns"
				case "capabilities":
					flag = "capability"
				case "pins":
					flag = "pin"
				}
				return exitWith(exitUsage, fmt.Errorf("--%s: %w", flag, fe.Err))
			}
			return exitWith(exitUsage, err)
		}
		file = &proxy.File{Listeners: []proxy.Listener{l}}
		if l.Certificates != nil {
			file.Certificates = []*proxy.CertStore{l.Certificates}
		}
	}
	// Flags given explicitly win over the file's settings.
	logFormat, logLevel, metricsAddr, maxTotal, drain := f.logFormat, f.logLevel, f.metrics, f.maxTotal, f.drain
	if file.LogFormat != "" && !cmd.Flags().Changed("log-format") {
		logFormat = file.LogFormat
	}
	if file.LogLevel != "" && !cmd.Flags().Changed("log-level") {
		logLevel = file.LogLevel
	}
	if file.Metrics != "" && !cmd.Flags().Changed("metrics") {
		metricsAddr = file.Metrics
	}
	if file.MaxConns > 0 && !cmd.Flags().Changed("max-total") {
		maxTotal = file.MaxConns
	}
	if file.Drain > 0 && !cmd.Flags().Changed("drain-timeout") {
		drain = file.Drain
	}
	logger, err := newLogger(cmd.ErrOrStderr(), logFormat, logLevel)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	out := cmd.OutOrStdout()
	if f.checkOnly {
		for _, l := range file.Listeners {
			fmt.Fprintf(out, "ok: %s: %s %s %s -> %s\n", l.Name, l.Mode, l.Protocol, l.Listen, l.Backend)
		}
		return nil
	}

	var metrics proxy.Metrics = proxy.NopMetrics{}
	var reg *prometheus.Registry
	var pm *promMetrics
	if metricsAddr != "" {
		reg = prometheus.NewRegistry()
		pm = newPromMetrics(reg)
		metrics = pm
	}
	srv, err := proxy.New(proxy.Options{Logger: logger, Metrics: metrics, MaxConns: maxTotal, Drain: drain}, file.Listeners...)
	if err != nil {
		return exitWith(exitConnect, err)
	}
	ctx, stop := signalContext()
	defer stop()
	if reg != nil {
		ml, err := net.Listen("tcp", metricsAddr)
		if err != nil {
			_ = srv.Close()
			return exitWith(exitConnect, fmt.Errorf("--metrics %s: %w", metricsAddr, err))
		}
		hs := &http.Server{Handler: metricsMux(reg), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second}
		go func() { _ = hs.Serve(ml) }()
		defer hs.Close()
		fmt.Fprintf(out, "metrics on http://%s/metrics\n", ml.Addr())
	}
	for i, l := range file.Listeners {
		fmt.Fprintf(out, "listening on %s (%s: %s %s -> %s)\n", srv.Addr(i), l.Name, l.Mode, l.Protocol, l.Backend)
	}

	// Certificates: SIGHUP and file changes reload them; handshakes after
	// the swap get the new one, sessions in progress are untouched.
	reloaded := func(cs *proxy.CertStore, how string, err error) {
		certFile, _ := cs.Files()
		if err != nil {
			logger.Error("certificate reload failed; the previous one stays", "file", certFile, "trigger", how, "err", err)
		} else {
			logger.Info("certificate reloaded", "file", certFile, "trigger", how)
		}
		if pm != nil {
			pm.reload(cs, err)
		}
	}
	for _, cs := range file.Certificates {
		if pm != nil {
			pm.reload(cs, nil)
		}
		if f.watchEvery > 0 {
			go cs.Watch(ctx, f.watchEvery, func(err error) { reloaded(cs, "file-change", err) })
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				for _, cs := range file.Certificates {
					reloaded(cs, "SIGHUP", cs.Reload())
				}
			}
		}
	}()
	logger.Info("proxy started", "listeners", len(file.Listeners))
	if err := srv.Serve(ctx); err != nil {
		return exitWith(exitConnect, err)
	}
	logger.Info("proxy stopped")
	return nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, o)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, o)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func metricsMux(reg *prometheus.Registry) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	return mux
}

// promMetrics implements proxy.Metrics with Prometheus collectors.
type promMetrics struct {
	conns      *prometheus.CounterVec
	active     *prometheus.GaugeVec
	handshakes *prometheus.CounterVec
	hsSeconds  *prometheus.HistogramVec
	failures   *prometheus.CounterVec
	bytes      *prometheus.CounterVec
	latency    *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	notAfter   *prometheus.GaugeVec
}

func newPromMetrics(reg *prometheus.Registry) *promMetrics {
	ns := "starttls_proxy"
	m := &promMetrics{
		conns: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "connections_total",
			Help: "TCP connections accepted (before limits)."}, []string{"listener"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "sessions_active",
			Help: "Sessions in progress."}, []string{"listener"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "handshakes_total",
			Help: "Completed TLS handshakes by version and cipher suite."}, []string{"listener", "version", "cipher"}),
		hsSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "handshake_seconds",
			Help: "TLS handshake duration.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"listener"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "failures_total",
			Help: "Sessions that ended badly or were refused, by reason."}, []string{"listener", "reason"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "bytes_total",
			Help: "Relayed payload bytes by direction."}, []string{"listener", "direction"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "latency_seconds",
			Help:    "Phase durations: setup (accept until relaying), backend (connect and greeting), session (whole).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 12)}, []string{"listener", "phase"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "certificate_reloads_total",
			Help: "Certificate reloads by result."}, []string{"file", "result"}),
		notAfter: prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: "certificate_not_after_seconds",
			Help: "Expiry (Unix time) of the certificate in use."}, []string{"file"}),
	}
	reg.MustRegister(m.conns, m.active, m.handshakes, m.hsSeconds, m.failures, m.bytes, m.latency, m.reloads, m.notAfter,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *promMetrics) Connection(l string)        { m.conns.WithLabelValues(l).Inc() }
func (m *promMetrics) Active(l string, delta int) { m.active.WithLabelValues(l).Add(float64(delta)) }
func (m *promMetrics) Failure(l, reason string)   { m.failures.WithLabelValues(l, reason).Inc() }
func (m *promMetrics) Bytes(l, dir string, n int) { m.bytes.WithLabelValues(l, dir).Add(float64(n)) }
func (m *promMetrics) Latency(l, phase string, d time.Duration) {
	m.latency.WithLabelValues(l, phase).Observe(d.Seconds())
}
func (m *promMetrics) Handshake(l string, st tls.ConnectionState, d time.Duration) {
	m.handshakes.WithLabelValues(l, tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)).Inc()
	m.hsSeconds.WithLabelValues(l).Observe(d.Seconds())
}

func (m *promMetrics) reload(cs *proxy.CertStore, err error) {
	certFile, _ := cs.Files()
	if err != nil {
		m.reloads.WithLabelValues(certFile, "error").Inc()
		return
	}
	m.reloads.WithLabelValues(certFile, "ok").Inc()
	if c := cs.Current(); c != nil && c.Leaf != nil {
		m.notAfter.WithLabelValues(certFile).Set(float64(c.Leaf.NotAfter.Unix()))
	}
}

var _ proxy.Metrics = (*promMetrics)(nil)
