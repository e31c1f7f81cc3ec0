package main

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/starttls-go/starttls/tlsrpt"
	"github.com/starttls-go/starttls/watch"
)

// tlsrptAlertFlags choose where `tlsrpt serve|fetch` sends alerts: the
// routes of a watch configuration (--alerts) or one webhook (--webhook,
// a shorthand for a one-route configuration). Either way the sending is
// watch's.
type tlsrptAlertFlags struct {
	file, webhook string
	rate          float64
}

func (f *tlsrptAlertFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.file, "alerts", "", "watch configuration (YAML) whose alert routes and tlsrpt: section are used")
	fl.StringVar(&f.webhook, "webhook", "", "POST alerts as JSON (schema "+watch.AlertSchema+") to this URL")
	fl.Float64Var(&f.rate, "alert-rate", 0.05, "alert when a report's failure rate for a policy is above this fraction (overrides tlsrpt.failure_rate)")
}

// alerter is nil when no route is configured.
func (f *tlsrptAlertFlags) alerter(cmd *cobra.Command) (*tlsrpt.Alerter, error) {
	var cfg *watch.Config
	var err error
	switch {
	case f.file != "" && f.webhook != "":
		return nil, errors.New("give --alerts or --webhook, not both (add the webhook as a route of the file)")
	case f.file != "":
		cfg, err = watch.LoadConfig(f.file)
	case f.webhook != "":
		// A JSON string is a YAML scalar, so the URL needs no other quoting.
		u, _ := json.Marshal(f.webhook)
		cfg, err = watch.ParseConfig("--webhook", fmt.Appendf(nil, "alerts:\n  - name: webhook\n    webhook: %s\n", u))
	default:
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(cfg.Alerts) == 0 {
		return nil, fmt.Errorf("--alerts %s: no alert routes", f.file)
	}
	routes, err := watch.NewRoutes(cfg)
	if err != nil {
		return nil, err
	}
	rate := cfg.TLSRPT.FailureRate
	if cmd.Flags().Changed("alert-rate") || f.file == "" {
		rate = f.rate
	}
	if rate < 0 || rate > 1 {
		return nil, fmt.Errorf("--alert-rate %v: want a fraction between 0 and 1", rate)
	}
	return &tlsrpt.Alerter{FailureRate: rate, MinSessions: cfg.TLSRPT.MinSessions, Send: tlsrpt.RoutesSender(routes, cfg.TLSRPT.Alerts, nil)}, nil
}
