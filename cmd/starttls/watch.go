package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls/watch"
	"github.com/starttls-go/starttls/watch/store"
	"github.com/starttls-go/starttls/watch/web"
)

func newWatchCmd() *cobra.Command {
	var (
		db, httpAddr string
		checkOnly    bool
	)
	cmd := &cobra.Command{
		Use:   "watch --config FILE [flags]",
		Short: "Check servers and mail domains on a schedule, store the history, alert on changes, serve a dashboard",
		Long: `watch runs check on every target and mail on every domain of a YAML configuration,
each on its interval (jittered, with bounded concurrency and scan's rate limits), stores
every result in SQLite (default) or PostgreSQL, computes what changed since the previous
run (grade, findings, certificate, expiry, TLS versions and suites, MTA-STS, TLSA, MX,
reachability) and sends the changes to webhooks and by mail. With --http it serves a
dashboard (no JavaScript) and /metrics.

SIGHUP reloads the configuration; a configuration that does not load is logged and the
old one stays. See docs/watch.md for every field.

Exit status: 2 when the configuration is refused (the message names file, line and
field), 3 when the database cannot be opened or another watch holds it.`,
		Example: `  starttls watch --config watch.yaml --http 127.0.0.1:8080
  starttls watch --config watch.yaml --db postgres://watch@db.example.org/watch?sslmode=verify-full
  starttls watch --config watch.yaml --check-config`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			path, _ := cmd.Flags().GetString("config")
			cfg, err := watch.LoadConfig(path)
			if err != nil {
				return exitWith(exitUsage, err)
			}
			if db != "" {
				cfg.DB = db
			}
			if cmd.Flags().Changed("http") {
				cfg.HTTP = httpAddr
			}
			if checkOnly {
				fmt.Fprintf(cmd.OutOrStdout(), "%s: %d targets, %d domains, %d alert routes\n", path, len(cfg.Targets), len(cfg.Domains), len(cfg.Alerts))
				return nil
			}
			return runWatch(cmd, path, cfg)
		},
	}
	fl := cmd.Flags()
	fl.String("config", "", "YAML configuration file (required)")
	_ = cmd.MarkFlagRequired("config")
	fl.StringVar(&db, "db", "", "SQLite file or postgres:// URL (overrides the configuration's db)")
	fl.StringVar(&httpAddr, "http", "", "serve the dashboard on this address, e.g. 127.0.0.1:8080 (overrides the configuration's http)")
	fl.BoolVar(&checkOnly, "check-config", false, "validate the configuration and exit")
	return cmd
}

func init() { rootCmd.AddCommand(newWatchCmd()) }

func runWatch(cmd *cobra.Command, path string, cfg *watch.Config) error {
	ctx, stop := commandContext(cmd)
	defer stop()
	log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	st, err := store.Open(ctx, cfg.DB)
	if err != nil {
		return exitWith(exitConnect, err)
	}
	defer st.Close()
	w, err := watch.New(ctx, cfg, st)
	if err != nil {
		return exitWith(exitUsage, err)
	}
	w.Log = log
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				reloadWatch(w, path, log)
			case <-ctx.Done():
				return
			}
		}
	}()
	if cfg.HTTP != "" {
		ln, err := net.Listen("tcp", cfg.HTTP)
		if err != nil {
			return exitWith(exitUsage, fmt.Errorf("--http: %w", err))
		}
		srv := &http.Server{Handler: (&web.Server{Store: st, Metrics: func() []web.Metric { return watchMetrics(w) }, Log: log}).Handler(),
			ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 60 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("watch: dashboard", "err", err)
			}
		}()
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		}()
		log.Info("watch: dashboard", "url", "http://"+ln.Addr().String()+"/")
	}
	log.Info("watch: started", "targets", len(cfg.Targets), "domains", len(cfg.Domains), "db", st.Dialect())
	return w.Run(ctx)
}

// reloadWatch loads the configuration file again; a file that does not
// load leaves the running configuration in place.
func reloadWatch(w *watch.Watcher, path string, log *slog.Logger) {
	cfg, err := watch.LoadConfig(path)
	if err == nil {
		old := w.Config()
		cfg.DB, cfg.HTTP = old.DB, old.HTTP // these need a restart
		err = w.Reload(cfg)
	}
	if err != nil {
		w.Metrics.ReloadFails.Add(1)
		log.Error("watch: reload failed, keeping the running configuration", "err", err)
		return
	}
	log.Info("watch: reloaded", "targets", len(cfg.Targets), "domains", len(cfg.Domains))
}

func watchMetrics(w *watch.Watcher) []web.Metric {
	m := &w.Metrics
	return []web.Metric{
		{Name: "watch_subjects", Help: "targets and domains scheduled", Gauge: true, Value: m.Subjects.Load()},
		{Name: "watch_runs_total", Help: "runs finished", Value: m.Runs.Load()},
		{Name: "watch_changes_total", Help: "changes detected", Value: m.Changes.Load()},
		{Name: "watch_results_saved_total", Help: "results stored", Value: m.Saved.Load()},
		{Name: "watch_results_buffered", Help: "results waiting for the database", Gauge: true, Value: int64(m.Buffered())},
		{Name: "watch_results_dropped_total", Help: "results dropped (buffer full)", Value: m.Dropped.Load()},
		{Name: "watch_db_errors_total", Help: "failed database writes", Value: m.DBErrors.Load()},
		{Name: "watch_alerts_sent_total", Help: "alert messages sent", Value: m.AlertsSent.Load()},
		{Name: "watch_alerts_failed_total", Help: "alert messages not delivered", Value: m.AlertFails.Load()},
		{Name: "watch_reload_failures_total", Help: "failed configuration reloads", Value: m.ReloadFails.Load()},
	}
}
