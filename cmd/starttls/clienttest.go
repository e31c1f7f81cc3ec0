package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/clienttest"
)

func newClienttestCmd() *cobra.Command {
	var proto, listen, scenarioFlag string
	var scenarios []string
	var asJSON, asMarkdown, self, list bool
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "clienttest --proto PROTO [flags] -- CLIENT ARGS...",
		Short: "Play malicious STARTTLS servers against a client: stripping, injection, tampering, bad certificates",
		Long: `clienttest starts, for each scenario, a server on a fresh loopback port that
misbehaves in one way (strips STARTTLS, injects plaintext after the go-ahead,
presents a bad certificate, ...), runs the client with {host}, {port}, {addr}
and {ca} replaced in its arguments, and judges from what the client sent
whether it leaked credentials or mail in plaintext or accepted what it should
not. The "control" scenario is an honest server: if the client fails it,
nothing else counts.`,
		Example: `  starttls clienttest --proto smtp -- curl -sS --ssl-reqd --cacert {ca} smtp://{addr} \
      --mail-from a@x.test --mail-rcpt b@x.test -T msg.eml -u user:secret
  starttls clienttest --proto imap --self
  starttls clienttest --proto postgres -- psql "host={host} port={port} sslmode=verify-full sslrootcert={ca}"
  starttls clienttest --proto submission --list
  starttls clienttest --proto imap --listen 127.0.0.1:1143 --scenario strip-capability`,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := starttls.Protocol(strings.ToLower(proto))
			if list {
				scenarios := clienttest.Scenarios(p)
				if len(scenarios) == 0 {
					return exitWith(exitUsage, fmt.Errorf("no scenarios for %q: clienttest speaks %s", p, clienttestProtocols()))
				}
				for _, s := range scenarios {
					fmt.Fprintf(cmd.OutOrStdout(), "%-24s %s\n%-24s expect: %s\n", s.Name, s.Summary, "", s.Expect)
				}
				return nil
			}
			ctx, cancel := signalContext()
			defer cancel()
			if listen != "" {
				if scenarioFlag == "" {
					return exitWith(exitUsage, fmt.Errorf("--listen needs --scenario"))
				}
				dir, err := os.MkdirTemp("", "starttls-clienttest-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				l, err := net.Listen("tcp", listen)
				if err != nil {
					return exitWith(exitConnect, err)
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "serving %s scenario %q on %s; trust %s/ca.pem (Ctrl-C to stop)\n", p, scenarioFlag, l.Addr(), dir)
				pr := newPrinter(cmd.OutOrStdout())
				return clienttest.Serve(ctx, l, p, scenarioFlag, dir, func(r clienttest.Result) {
					pr.line("%s %s — %s", verdictWord(pr, r.Verdict), r.Scenario.Name, r.Evidence)
				})
			}
			o := clienttest.Options{Protocol: p, Scenarios: scenarios, Command: args, Timeout: timeout}
			if scenarioFlag != "" {
				o.Scenarios = append(o.Scenarios, scenarioFlag)
			}
			if self {
				o.Command, o.Client = nil, clienttest.LibraryClient(p)
			} else if len(args) == 0 {
				return exitWith(exitUsage, fmt.Errorf("give the client command after --, or --self"))
			}
			rep, err := clienttest.Run(ctx, o)
			if err != nil {
				return exitWith(exitUsage, err)
			}
			out := cmd.OutOrStdout()
			switch {
			case asJSON:
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			case asMarkdown:
				rep.Markdown(out)
			default:
				pr := newPrinter(out)
				pr.section(fmt.Sprintf("%s client: %s", p, rep.Client))
				for _, r := range rep.Results {
					pr.line("  %s %-24s %s", verdictWord(pr, r.Verdict), r.Scenario.Name, pr.dim(r.Evidence))
				}
				if !rep.Counts {
					pr.line("\n%s", pr.red("the control scenario failed: the client does not work with an honest server, so nothing above counts"))
				}
			}
			if !rep.Counts {
				return exitWith(exitFindings, fmt.Errorf("control scenario failed"))
			}
			if f := rep.Failed(); len(f) > 0 {
				return exitWith(exitFindings, fmt.Errorf("%d scenarios failed: %s", len(f), strings.Join(f, ", ")))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&proto, "proto", "smtp", "protocol: "+clienttestProtocols())
	f.StringSliceVar(&scenarios, "scenarios", nil, "run only these scenarios (comma-separated)")
	f.StringVar(&scenarioFlag, "scenario", "", "run one scenario (with --listen: the one to serve)")
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (schema starttls.clienttest/v1)")
	f.BoolVar(&asMarkdown, "markdown", false, "print the report as a Markdown table")
	f.BoolVar(&self, "self", false, "test this module's own client library instead of a command")
	f.BoolVar(&list, "list", false, "list the scenarios of --proto and exit")
	f.StringVar(&listen, "listen", "", "serve --scenario on ADDR for a client you drive by hand")
	f.DurationVar(&timeout, "timeout", 15*time.Second, "deadline per scenario; the client is killed at its end")
	return cmd
}

func clienttestProtocols() string {
	var names []string
	for _, p := range clienttest.Protocols() {
		names = append(names, string(p))
	}
	return strings.Join(names, ", ")
}

func verdictWord(p *printer, v clienttest.Verdict) string {
	switch v {
	case clienttest.Pass:
		return p.green("PASS")
	case clienttest.Fail:
		return p.red("FAIL")
	}
	return p.yellow("????")
}

func init() { rootCmd.AddCommand(newClienttestCmd()) }
