package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/serve"
)

// demoServer is one server the demo starts, with the grades it must get.
type demoServer struct {
	opts     serve.Options
	label    string
	expected func(r *check.Report) error
}

func newDemoCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start servers of every protocol on loopback, one misconfigured, and check them all",
		Long: `demo is the main job with nothing to set up: it makes a throwaway CA, starts a
server of every protocol serve supports on 127.0.0.1, plus one deliberately
misconfigured IMAP server (plaintext login and AUTH before TLS, TLS 1.0 and 1.1
on), checks each one and prints the reports and a summary. It exits 0 when every
server got the verdict it deserves.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := commandContext(cmd)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the reports as JSON documents")
	return cmd
}

func init() { rootCmd.AddCommand(newDemoCmd()) }

func runDemo(ctx context.Context, out io.Writer, asJSON bool) error {
	dir, err := os.MkdirTemp("", "starttls-demo-")
	if err != nil {
		return exitWith(exitFindings, err)
	}
	defer os.RemoveAll(dir)
	good, caFile, err := serve.ThrowawayTLS(dir)
	if err != nil {
		return exitWith(exitFindings, err)
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return exitWith(exitFindings, err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)

	var servers []demoServer
	for _, p := range starttls.Protocols() {
		// Every protocol with a server half has an application behind it
		// (serve.HasApp), so every one can be checked end to end.
		if info, err := starttls.Lookup(p); err != nil || !info.Server {
			continue
		}
		servers = append(servers, demoServer{opts: serve.Options{Protocol: p, TLSConfig: good}, label: "correct", expected: func(r *check.Report) error {
			if !strings.HasPrefix(r.Grade, "A") {
				return fmt.Errorf("a correct server got grade %s", r.Grade)
			}
			return nil
		}})
	}
	legacy := good.Clone()
	legacy.MinVersion = tls.VersionTLS10
	servers = append(servers, demoServer{
		opts:  serve.Options{Protocol: starttls.IMAP, TLSConfig: legacy, Policy: starttls.Optional, Capabilities: []string{"AUTH=PLAIN"}},
		label: "misconfigured",
		expected: func(r *check.Report) error {
			for _, id := range []string{"plaintext-login", "auth-before-tls", "tls1.0-enabled", "tls1.1-enabled"} {
				if !r.Has(id) {
					return fmt.Errorf("the misconfigured server lacks finding %s", id)
				}
			}
			return nil
		},
	})

	var targets []starttls.Target
	for i := range servers {
		s, err := serve.Start(ctx, servers[i].opts)
		if err != nil {
			return exitWith(exitFindings, fmt.Errorf("starting %s: %w", servers[i].opts.Protocol, err))
		}
		defer s.Close()
		t, err := starttls.ParseTarget(s.Addr.String(), servers[i].opts.Protocol)
		if err != nil {
			return exitWith(exitFindings, err)
		}
		targets = append(targets, t)
	}
	start := time.Now()
	reports := checkAll(ctx, targets, check.Options{Roots: roots, ServerName: "localhost", Timeout: 5 * time.Second})
	elapsed := time.Since(start)

	p := newPrinter(out)
	var failures []string
	for i, r := range reports {
		if asJSON {
			if err := writeJSON(out, r); err != nil {
				return exitWith(exitFindings, err)
			}
		} else {
			printReport(out, r)
		}
		if err := servers[i].expected(r); err != nil {
			failures = append(failures, fmt.Sprintf("%s (%s): %v", r.Target, servers[i].label, err))
		}
	}
	if !asJSON {
		p.section(fmt.Sprintf("Summary: %d servers checked in %.1f s (CA: throwaway, removed at exit)", len(reports), elapsed.Seconds()))
		width := 0
		for _, r := range reports {
			width = max(width, len(r.Target))
		}
		for i, r := range reports {
			var worst []string
			for _, f := range r.Findings {
				if f.Severity >= check.Medium {
					worst = append(worst, f.ID)
				}
			}
			p.line("  %-*s %-14s grade %-3s %s", width, r.Target, servers[i].label, r.Grade, strings.Join(worst, ", "))
		}
	}
	if len(failures) > 0 {
		return exitWith(exitFindings, fmt.Errorf("demo self-check failed: %s", strings.Join(failures, "; ")))
	}
	return nil
}
