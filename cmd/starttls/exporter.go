package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls/exporter"
)

func newExporterCmd() *cobra.Command {
	var (
		listen, configFile, defModule string
		allow                         []string
		maxConc                       int
		offset, maxProbe              time.Duration
		checkConfig                   bool
	)
	cmd := &cobra.Command{
		Use:   "exporter [flags]",
		Short: "Prometheus exporter: /probe?target=URL&module=NAME runs a check and answers metrics",
		Long: `exporter serves the check to Prometheus in the multi-target pattern of
blackbox_exporter: GET /probe?target=smtp://mx.example.org&module=quick checks that
target with the settings of the module (depth, timeout, CA file, server name, fail_on)
and answers metrics in the Prometheus text format (starttls_probe_success,
starttls_grade, starttls_finding, starttls_cert_days_left, ...). /metrics describes
the exporter itself. Without --config the modules are quick, full and session.

A probe is bounded by Prometheus's scrape timeout (less --timeout-offset) and at most
--max-concurrent probes run at once. Without --allow, whoever can reach the exporter can
make it connect anywhere it can reach: restrict it with --allow, a firewall, or both.
See docs/exporter.md.`,
		Example: `  starttls exporter
  starttls exporter --listen 127.0.0.1:9488 --config exporter.yml --allow '*.example.org' --allow 192.0.2.0/24
  curl 'http://127.0.0.1:9488/probe?target=smtp://mx.example.org&module=quick'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg := exporter.DefaultConfig()
			if configFile != "" {
				var err error
				if cfg, err = exporter.LoadConfig(configFile); err != nil {
					return exitWith(exitUsage, fmt.Errorf("--config: %w", err))
				}
			}
			al, err := exporter.ParseAllowList(allow)
			if err != nil {
				return exitWith(exitUsage, err)
			}
			logger := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			e, err := exporter.New(exporter.Options{
				Config: cfg, DefaultModule: defModule, MaxConcurrent: maxConc, TimeoutOffset: offset,
				MaxProbeTime: maxProbe, Allow: al, Logger: logger,
			})
			if err != nil {
				return exitWith(exitUsage, err)
			}
			out := cmd.OutOrStdout()
			if checkConfig {
				fmt.Fprintf(out, "ok: modules %v\n", cfg.Names())
				return nil
			}
			l, err := net.Listen("tcp", listen)
			if err != nil {
				return exitWith(exitConnect, fmt.Errorf("--listen %s: %w", listen, err))
			}
			ctx, stop := commandContext(cmd)
			defer stop()
			hs := &http.Server{Handler: e.Handler(), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: maxProbe + 30*time.Second}
			fmt.Fprintf(out, "listening on %s (modules %v)\n", l.Addr(), cfg.Names())
			if len(allow) == 0 {
				logger.Warn("no --allow: any target may be probed; restrict access to this port")
			}
			errc := make(chan error, 1)
			go func() { errc <- hs.Serve(l) }()
			select {
			case err := <-errc:
				return exitWith(exitConnect, err)
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&listen, "listen", "127.0.0.1:9488", "address to serve /probe and /metrics on")
	fl.StringVar(&configFile, "config", "", "YAML file of modules (default: the built-in quick, full and session)")
	fl.StringVar(&defModule, "default-module", "", "module of a request that names none (default: quick, or the only module)")
	fl.StringArrayVar(&allow, "allow", nil, "allowed targets: CIDR, address, host name or *.domain (repeatable; default: any)")
	fl.IntVar(&maxConc, "max-concurrent", 8, "probes running at once")
	fl.DurationVar(&offset, "timeout-offset", 500*time.Millisecond, "taken off Prometheus's scrape timeout")
	fl.DurationVar(&maxProbe, "max-probe-time", 60*time.Second, "bound of a probe without a scrape timeout, and cap with one")
	fl.BoolVar(&checkConfig, "check-config", false, "validate the configuration and exit")
	return cmd
}

func init() { rootCmd.AddCommand(newExporterCmd()) }
