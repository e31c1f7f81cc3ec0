package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/starttls-go/starttls/tlsrpt"
	"golang.org/x/sync/errgroup"
)

// The collector's subcommands of `starttls tlsrpt`: serve, fetch, summary.

// imapFlags are the mailbox options shared by serve and fetch.
type imapFlags struct {
	url, passFile, passEnv, processed, quarantine, caFile string
}

func (f *imapFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.url, "imap", "", "mailbox to empty: imaps://user@host[:port]/INBOX (implicit TLS) or imap://... (STARTTLS)")
	fl.StringVar(&f.passFile, "imap-password-file", "", "file holding the IMAP password (first line)")
	fl.StringVar(&f.passEnv, "imap-password-env", "TLSRPT_IMAP_PASSWORD", "environment variable holding the IMAP password")
	fl.StringVar(&f.processed, "imap-processed", "INBOX.processed", "mailbox for handled reports")
	fl.StringVar(&f.quarantine, "imap-quarantine", "INBOX.quarantine", "mailbox for malformed reports and other mail")
	fl.StringVar(&f.caFile, "imap-ca", "", "PEM CA file to verify the IMAP server with (default: system roots)")
}

func (f *imapFlags) mailbox() (tlsrpt.Mailbox, error) {
	mb := tlsrpt.Mailbox{URL: f.url, Processed: f.processed, Quarantine: f.quarantine}
	switch {
	case f.passFile != "":
		b, err := os.ReadFile(f.passFile)
		if err != nil {
			return mb, err
		}
		mb.Password, _, _ = strings.Cut(strings.TrimRight(string(b), "\r\n"), "\n")
	case f.passEnv != "":
		mb.Password = os.Getenv(f.passEnv)
	}
	if mb.Password == "" {
		return mb, fmt.Errorf("no IMAP password: give --imap-password-file or set $%s", f.passEnv)
	}
	if f.caFile != "" {
		pem, err := os.ReadFile(f.caFile)
		if err != nil {
			return mb, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return mb, fmt.Errorf("--imap-ca %s: no PEM certificate", f.caFile)
		}
		mb.TLSConfig = &tls.Config{RootCAs: pool}
	}
	return mb, nil
}

func newTLSRPTServeCmd() *cobra.Command {
	var smtpAddr, httpsAddr, certFile, keyFile, dbDSN, hostname string
	var domains, rcpts []string
	var requireTLS, verbose bool
	var maxSize int
	var perMinute float64
	var al tlsrptAlertFlags
	var interval time.Duration
	var im imapFlags
	cmd := &cobra.Command{
		Use:   "serve --db FILE|URL [--smtp ADDR] [--https ADDR] [--imap URL] [flags]",
		Short: "Collect TLS-RPT reports by SMTP, HTTPS POST and/or from an IMAP mailbox",
		Long: `serve receives RFC 8460 aggregate reports for the rua of _smtp._tls records and
stores them in SQLite (a file name) or PostgreSQL (a postgres:// URL), in tables
tlsrpt_reports, tlsrpt_policies, tlsrpt_failures and tlsrpt_quarantine.

  --smtp   an SMTP server (STARTTLS offered; --require-tls to insist) taking mail for
           --domain (any local part) and --rcpt addresses. Only multipart/report;
           report-type=tlsrpt messages are accepted; other mail gets 550 5.7.1,
           malformed reports 554 5.6.0 (and are kept in tlsrpt_quarantine), all
           during the session, so nothing is ever bounced later.
  --https  POST of application/tlsrpt+gzip or +json (rua=https://...).
  --imap   a mailbox emptied every --imap-interval: reports are stored and moved to
           --imap-processed, the rest to --imap-quarantine.

Alerts (failure rate above --alert-rate, a new failure type, sts-policy-fetch-error or
tlsa-invalid) go along the alert routes of a watch configuration (--alerts watch.yml:
webhook and/or mail, as for starttls watch) or to one --webhook.`,
		Example: `  starttls tlsrpt serve --smtp 127.0.0.1:2525 --domain reports.example.org \
      --cert cert.pem --key key.pem --db tlsrpt.db
  starttls tlsrpt serve --https :8443 --cert cert.pem --key key.pem --db postgres://tlsrpt@db/tlsrpt
  TLSRPT_IMAP_PASSWORD=secret starttls tlsrpt serve --imap imaps://tlsrpt@mail.example.org/INBOX --db tlsrpt.db`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if smtpAddr == "" && httpsAddr == "" && im.url == "" {
				return exitWith(exitUsage, errors.New("give at least one of --smtp, --https, --imap"))
			}
			var tc *tls.Config
			if smtpAddr != "" || httpsAddr != "" {
				if certFile == "" || keyFile == "" {
					return exitWith(exitUsage, errors.New("--smtp and --https need --cert and --key"))
				}
				cert, err := tls.LoadX509KeyPair(certFile, keyFile)
				if err != nil {
					return exitWith(exitUsage, fmt.Errorf("--cert/--key: %w", err))
				}
				tc = &tls.Config{Certificates: []tls.Certificate{cert}}
			}
			if smtpAddr != "" && len(domains) == 0 && len(rcpts) == 0 {
				return exitWith(exitUsage, errors.New("--smtp needs --domain or --rcpt (the rua addresses to accept)"))
			}
			alerter, err := al.alerter(cmd)
			if err != nil {
				return exitWith(exitUsage, err)
			}
			var mb tlsrpt.Mailbox
			if im.url != "" {
				var err error
				if mb, err = im.mailbox(); err != nil {
					return exitWith(exitUsage, err)
				}
			}
			stderr := cmd.ErrOrStderr()
			logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			if verbose {
				logger = slog.New(slog.NewTextHandler(stderr, nil))
			}
			ctx, stop := commandContext(cmd)
			defer stop()
			st, err := tlsrpt.Open(ctx, dbDSN)
			if err != nil {
				return exitWith(exitConnect, err)
			}
			defer st.Close()
			if alerter != nil {
				// Alerts leave from an outbox: a stalled route must not
				// hold the reporting MTA's DATA or POST open.
				box := tlsrpt.NewOutbox(alerter.Send, 0, 0, logger)
				alerter.Send = box.Send
				defer func() {
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					if err := box.Close(ctx); err != nil {
						logger.Warn("tlsrpt alerts still queued at exit are lost", "err", err)
					}
				}()
			}
			col := &tlsrpt.Collector{Store: st, Logger: logger, Alerts: alerter}
			limits := tlsrpt.Limits{PerMinute: perMinute}
			g, gctx := errgroup.WithContext(ctx)
			out := cmd.OutOrStdout()
			if smtpAddr != "" {
				l, err := net.Listen("tcp", smtpAddr)
				if err != nil {
					return exitWith(exitConnect, err)
				}
				if hostname == "" {
					hostname = "localhost"
					if len(domains) > 0 {
						hostname = domains[0]
					}
				}
				srv := &tlsrpt.SMTPServer{Collector: col, TLSConfig: tc, Hostname: hostname, Domains: domains, Recipients: rcpts,
					RequireTLS: requireTLS, MaxMessage: maxSize, Limits: limits, Logger: logger}
				fmt.Fprintf(out, "smtp: listening on %s\n", l.Addr())
				g.Go(func() error { return srv.Serve(gctx, l) })
			}
			if httpsAddr != "" {
				l, err := net.Listen("tcp", httpsAddr)
				if err != nil {
					return exitWith(exitConnect, err)
				}
				fmt.Fprintf(out, "https: listening on %s\n", l.Addr())
				g.Go(func() error { return tlsrpt.ServeHTTPS(gctx, l, tc, tlsrpt.HTTPHandler(col, limits)) })
			}
			if im.url != "" {
				fmt.Fprintf(out, "imap: fetching %s every %s\n", im.url, interval)
				g.Go(func() error { return pollMailbox(gctx, col, mb, interval, logger) })
			}
			if err := g.Wait(); err != nil && ctx.Err() == nil {
				return exitWith(exitFindings, err)
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&smtpAddr, "smtp", "", "listen for SMTP on this address, e.g. 127.0.0.1:2525 or :25")
	fl.StringVar(&httpsAddr, "https", "", "listen for HTTPS POSTs on this address, e.g. :8443")
	fl.StringVar(&certFile, "cert", "", "PEM certificate chain for STARTTLS and HTTPS")
	fl.StringVar(&keyFile, "key", "", "PEM private key")
	fl.StringVar(&dbDSN, "db", "tlsrpt.db", "SQLite file or postgres:// URL")
	fl.StringSliceVar(&domains, "domain", nil, "accept mail for any address at this domain (repeatable)")
	fl.StringSliceVar(&rcpts, "rcpt", nil, "accept mail for this address (repeatable)")
	fl.StringVar(&hostname, "hostname", "", "name in the SMTP greeting (default: the first --domain)")
	fl.BoolVar(&requireTLS, "require-tls", false, "refuse MAIL before STARTTLS")
	fl.IntVar(&maxSize, "max-size", tlsrpt.MaxMessageBytes, "largest message (SMTP SIZE) in bytes")
	fl.Float64Var(&perMinute, "rate", 30, "new connections or requests per minute per client IP")
	al.add(cmd)
	fl.DurationVar(&interval, "imap-interval", 5*time.Minute, "how often to empty the --imap mailbox")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log every report received")
	im.add(cmd)
	return cmd
}

// pollMailbox empties the mailbox now and every interval; a failed run
// is logged and retried at the next tick.
func pollMailbox(ctx context.Context, col *tlsrpt.Collector, mb tlsrpt.Mailbox, interval time.Duration, logger *slog.Logger) error {
	if interval < 10*time.Second {
		interval = 10 * time.Second
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, interval)
		st, err := col.Fetch(rctx, mb)
		cancel()
		if err != nil && ctx.Err() == nil {
			logger.Warn("imap fetch", "err", err)
		} else if st.Messages > 0 {
			logger.Info("imap fetch", "messages", st.Messages, "stored", st.Stored, "duplicates", st.Duplicates, "quarantined", st.Quarantined)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func newTLSRPTFetchCmd() *cobra.Command {
	var dbDSN string
	var asJSON bool
	var im imapFlags
	var al tlsrptAlertFlags
	cmd := &cobra.Command{
		Use:   "fetch --imap URL --db FILE|URL [flags]",
		Short: "Empty an IMAP mailbox of TLS-RPT reports once (for cron)",
		Example: `  TLSRPT_IMAP_PASSWORD=secret starttls tlsrpt fetch --imap imaps://tlsrpt@mail.example.org/INBOX --db tlsrpt.db
  starttls tlsrpt fetch --imap imap://tlsrpt@mail.example.org/INBOX --imap-password-file pw --db tlsrpt.db --alerts watch.yml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if im.url == "" {
				return exitWith(exitUsage, errors.New("--imap is required"))
			}
			mb, err := im.mailbox()
			if err != nil {
				return exitWith(exitUsage, err)
			}
			alerter, err := al.alerter(cmd)
			if err != nil {
				return exitWith(exitUsage, err)
			}
			return withTLSRPTStore(cmd, dbDSN, func(ctx context.Context, st *tlsrpt.Store) error {
				ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
				defer cancel()
				stats, err := (&tlsrpt.Collector{Store: st, Alerts: alerter, Logger: slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))}).Fetch(ctx, mb)
				if asJSON {
					if werr := writeJSON(cmd.OutOrStdout(), stats); werr != nil {
						return werr
					}
				} else {
					fmt.Fprintf(cmd.OutOrStdout(), "%d message(s): %d report(s) stored, %d duplicate(s), %d quarantined, %d not a report\n",
						stats.Messages, stats.Stored, stats.Duplicates, stats.Quarantined, stats.NotReports)
				}
				if err != nil {
					return exitWith(exitConnect, err)
				}
				return nil
			})
		},
	}
	cmd.Flags().StringVar(&dbDSN, "db", "tlsrpt.db", "SQLite file or postgres:// URL")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the counts as JSON")
	im.add(cmd)
	al.add(cmd)
	return cmd
}

func newTLSRPTSummaryCmd() *cobra.Command {
	var dbDSN, since, domain string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "summary --db FILE|URL [--since 30d] [--domain D] [--json]",
		Short: "Summarise the stored TLS-RPT reports: per policy, sender, failure type and day",
		Example: `  starttls tlsrpt summary --db tlsrpt.db
  starttls tlsrpt summary --db tlsrpt.db --since 7d --domain example.org --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, err := parseSince(since, time.Now())
			if err != nil {
				return exitWith(exitUsage, err)
			}
			return withTLSRPTStore(cmd, dbDSN, func(ctx context.Context, st *tlsrpt.Store) error {
				s, err := tlsrpt.Summarize(ctx, st.DB, st.Dialect, domain, from)
				if err != nil {
					return exitWith(exitConnect, err)
				}
				if asJSON {
					return writeJSON(cmd.OutOrStdout(), s)
				}
				printCollectorSummary(cmd.OutOrStdout(), s)
				return nil
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dbDSN, "db", "tlsrpt.db", "SQLite file or postgres:// URL")
	fl.StringVar(&since, "since", "30d", "period: a duration (30d, 12h) or a date (2026-11-01)")
	fl.StringVar(&domain, "domain", "", "only this policy domain")
	fl.BoolVar(&asJSON, "json", false, "print one JSON document (schema "+tlsrpt.SummarySchema+")")
	return cmd
}

// withTLSRPTStore runs fn with the command's context and the store at dsn
// open, and closes it after; a store that does not open is exitConnect.
func withTLSRPTStore(cmd *cobra.Command, dsn string, fn func(context.Context, *tlsrpt.Store) error) error {
	ctx, stop := commandContext(cmd)
	defer stop()
	st, err := tlsrpt.Open(ctx, dsn)
	if err != nil {
		return exitWith(exitConnect, err)
	}
	defer st.Close()
	return fn(ctx, st)
}

// parseSince reads "30d", "12h", "90m" or a date.
func parseSince(s string, now time.Time) (time.Time, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 36500 {
			return time.Time{}, fmt.Errorf("--since %q: want a number of days such as 30d", s)
		}
		return now.AddDate(0, 0, -days), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want 30d, 12h or a date like 2026-11-01", s)
}

func pct(r float64) string { return strconv.FormatFloat(100*r, 'f', 2, 64) + "%" }

func printCollectorSummary(w io.Writer, s *tlsrpt.Summary) {
	p := newPrinter(w)
	scope := "all policy domains"
	if s.Domain != "" {
		scope = s.Domain
	}
	p.line("%s", p.bold(fmt.Sprintf("TLS-RPT since %s: %s", s.Since.Format(time.DateOnly), scope)))
	rate := pct(s.FailureRate)
	if s.Failed > 0 {
		rate = p.yellow(rate)
	} else {
		rate = p.green(rate)
	}
	p.line("  %d report(s), %d successful and %d failed session(s), %s failed; %d quarantined input(s)",
		s.Reports, s.Successful, s.Failed, rate, s.Quarantined)
	p.section("Policies")
	for _, x := range s.Policies {
		p.line("  %-16s %-6s %8d ok %6d failed %7s  %d report(s)  %s", x.Domain, x.Type, x.Successful, x.Failed, pct(x.FailureRate), x.Reports, p.dim(x.MXHosts))
	}
	p.section("Sending organizations")
	for _, o := range s.Organizations {
		p.line("  %-24s %3d report(s) %8d ok %6d failed %7s", o.Organization, o.Reports, o.Successful, o.Failed, pct(o.FailureRate))
	}
	p.section("Failures by result type")
	if len(s.Failures) == 0 {
		p.line("  %s", p.green("none"))
	}
	for _, f := range s.Failures {
		name := f.ResultType
		if !f.Known {
			name += p.dim(" (not an RFC 8460 type)")
		}
		p.line("  %-28s %6s session(s) in %d detail(s)  %s", name, p.red(strconv.FormatInt(f.Sessions, 10)), f.Details, p.dim(strings.Join(f.MXHosts, ", ")))
	}
	p.section("Failure rate by day")
	for _, d := range s.Days {
		p.line("  %s  %7s  %6d failed of %d  %s", d.Day, pct(d.FailureRate), d.Failed, d.Successful+d.Failed, bar(d.FailureRate))
	}
	if len(s.RecentReasons) > 0 {
		p.section("Recently quarantined")
		for _, q := range s.RecentReasons {
			p.line("  %s  %s  %s", q.Received.Format(time.DateTime), q.Source, p.yellow(q.Reason))
		}
	}
	fmt.Fprintln(w)
}

// bar draws a failure rate as up to 20 characters (5 % each).
func bar(r float64) string {
	n := int(r*20 + 0.5)
	if r > 0 && n == 0 {
		n = 1
	}
	return strings.Repeat("#", min(n, 20))
}
