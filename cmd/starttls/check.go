package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
)

func newCheckCmd() *cobra.Command {
	var f clientFlags
	var asJSON bool
	var failOn, depth string
	var nf nagiosFlags
	cmd := &cobra.Command{
		Use:   "check [flags] URL...",
		Short: "Audit servers' STARTTLS: dialogue, TLS versions, suites, certificate, STARTTLS flaws",
		Long: `check audits each server as an attacker and a strict client would: the STARTTLS
dialogue, the TLS versions and cipher suites it accepts, its key exchange groups, the
certificate chain, and STARTTLS-specific flaws (command injection, response injection,
authentication before TLS, STARTTLS after TLS, SMTP state not reset). It prints a
graded report per server, or with --json one JSON document per server
(schema starttls.report/v1, see docs/check.md).

Exit status: 0 when the upgrade succeeded and no finding reaches --fail-on; 1 when a
finding reaches --fail-on, or when the server was reached but no TLS session came of it
(no greeting, a stall, a malformed reply, a hang-up, STARTTLS not offered or refused, a
failed handshake: each is a finding, whatever --fail-on says); 2 on usage errors; 3 when
a server could not be reached (connection refused, connect timeout, unknown host).`,
		Example: `  starttls check smtp://mx.example.org
  starttls check --json imap://127.0.0.1:1143 --ca ca.pem
  starttls check --only quick --fail-on medium submission://smtp.example.org pop3://pop.example.org
  starttls check mail.example.org:25 --proto smtp
  # a Nagios/Icinga service check (docs/check.md):
  starttls check --nagios --only quick --warn-days 21 smtp://mx.example.org
  # the XMPP domain example.org is served by xmpp.example.net (SRV):
  starttls check --xmpp-host example.org xmpp://xmpp.example.net`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			threshold, err := parseFailOnAndDepth(failOn, depth)
			if err != nil {
				return err
			}
			var targets []starttls.Target
			for _, a := range args {
				t, err := starttls.ParseTarget(a, starttls.Protocol(f.proto))
				if err != nil {
					return exitWith(exitUsage, err)
				}
				if err := f.checkXMPPHost(t); err != nil {
					return exitWith(exitUsage, err)
				}
				targets = append(targets, t)
			}
			// --servername is what is sent and verified; the stream's
			// domain is --xmpp-host (and the name verified, unless
			// --servername says otherwise, as in connect).
			serverName := f.serverName
			if serverName == "" {
				serverName = f.xmppHost
			}
			roots, err := f.roots()
			if err != nil {
				return exitWith(exitUsage, err)
			}
			ctx, stop := commandContext(cmd)
			defer stop()
			reports := checkAll(ctx, targets, check.Options{Roots: roots, ServerName: serverName, Domain: f.xmppHost, Timeout: f.timeout, Depth: depth, LocalName: f.localName})
			out := cmd.OutOrStdout()
			if nf.on {
				return nf.report(out, reports)
			}
			code := exitOK
			for _, r := range reports {
				if asJSON {
					if err := writeJSON(out, r); err != nil {
						return exitWith(exitFindings, err)
					}
				} else {
					printReport(out, r)
				}
				code = max(code, exitCodeOf(r, threshold))
			}
			if code != exitOK {
				return exitWith(code, summaryError(reports, threshold))
			}
			return nil
		},
	}
	f.register(cmd)
	nf.register(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document per target (schema starttls.report/v1)")
	cmd.Flags().StringVar(&failOn, "fail-on", "high", "exit 1 when a finding has this severity or higher: low, medium, high, critical")
	cmd.Flags().StringVar(&depth, "only", check.Full, "quick (dialogue, certificate, versions, injection) or full")
	return cmd
}

func init() { rootCmd.AddCommand(newCheckCmd()) }

// checkAll checks targets concurrently (a few at a time) and returns the
// reports in the order given.
func checkAll(ctx context.Context, targets []starttls.Target, o check.Options) []*check.Report {
	out := make([]*check.Report, len(targets))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			out[i] = check.Run(ctx, t, o)
		}()
	}
	wg.Wait()
	return out
}

// exitCodeOf is a report's exit status: 3 when the server could not be
// reached at all, 1 when the main session failed in any other way (every
// such outcome is a verdict, whatever --fail-on says) or a finding reaches
// the threshold, else 0.
func exitCodeOf(r *check.Report, threshold check.Severity) int {
	switch {
	case r.Status == starttls.StatusConnectRefused, r.Status == starttls.StatusConnectTimeout, r.Has("connect-failed"):
		return exitConnect
	case r.Status == starttls.StatusError && len(r.Findings) == 0:
		return exitConnect
	case r.Status != starttls.StatusSuccess:
		return exitFindings
	}
	for _, f := range r.Findings {
		if f.Severity >= threshold {
			return exitFindings
		}
	}
	return exitOK
}

func summaryError(reports []*check.Report, threshold check.Severity) error {
	var parts []string
	for _, r := range reports {
		switch code := exitCodeOf(r, threshold); code {
		case exitConnect:
			parts = append(parts, fmt.Sprintf("%s: could not connect (%s)", r.Target, r.Error))
		case exitFindings:
			if r.Status != starttls.StatusSuccess {
				parts = append(parts, fmt.Sprintf("%s: %s (%s)", r.Target, r.Status, r.Error))
				continue
			}
			n := 0
			for _, f := range r.Findings {
				if f.Severity >= threshold {
					n++
				}
			}
			parts = append(parts, fmt.Sprintf("%s: grade %s, %d finding(s) at or above %s", r.Target, r.Grade, n, threshold))
		}
	}
	return fmt.Errorf("%s", strings.Join(parts, "; "))
}

func printReport(w io.Writer, r *check.Report) {
	p := newPrinter(w)
	grade := r.Grade
	switch {
	case strings.HasPrefix(grade, "A"):
		grade = p.green(grade)
	case grade == "B" || grade == "C":
		grade = p.yellow(grade)
	default:
		grade = p.red(grade)
	}
	p.line("%s  grade %s  (%s check, %.0f ms)", p.bold(r.Target), grade, r.Depth, r.Timings.TotalMS)
	if r.Error != "" {
		p.line("  %s %s", p.red(string(r.Status)+":"), r.Error)
	}

	s := r.StartTLS
	p.section("STARTTLS")
	switch {
	case s.Implicit:
		p.line("  implicit TLS (no plaintext dialogue)")
	case s.Upgraded:
		p.line("  offered and upgraded")
	case s.Offered:
		p.line("  offered, upgrade failed")
	case r.Status == starttls.StatusNotOffered || r.Status == starttls.StatusPreauth:
		p.line("  not offered")
	default:
		p.line("  no answer to judge: %s", p.red(string(r.Status)))
	}
	if s.Greeting != "" {
		p.line("  greeting        %s", firstLine(s.Greeting))
	}
	if len(s.CapabilitiesBefore) > 0 {
		p.line("  before TLS      %s", strings.Join(s.CapabilitiesBefore, ", "))
	}
	if len(s.CapabilitiesAfter) > 0 {
		p.line("  after TLS       %s", strings.Join(s.CapabilitiesAfter, ", "))
	}
	for _, id := range sortedKeys(s.Probes) {
		p.line("  %-15s %s", id, verdictColor(p, s.Probes[id]))
	}
	if !s.Upgraded {
		printFailedDialogue(p, r)
	}

	t := r.TLS
	p.section("TLS")
	if t.Negotiated != nil {
		p.line("  negotiated      %s, %s", t.Negotiated.Version, t.Negotiated.CipherSuite)
	}
	var vs []string
	for _, k := range []string{"sslv3", "tls1.0", "tls1.1", "tls1.2", "tls1.3"} {
		if on, ok := t.Versions[k]; ok {
			mark := p.dim("no")
			if on {
				mark = "yes"
				if k == "sslv3" || k == "tls1.0" || k == "tls1.1" {
					mark = p.red("yes")
				}
			}
			vs = append(vs, k+" "+mark)
		}
	}
	if len(vs) > 0 {
		p.line("  versions        %s", strings.Join(vs, ", "))
	}
	for _, k := range []string{"tls1.3", "tls1.2", "tls1.1", "tls1.0", "sslv3"} {
		if suites := t.CipherSuites[k]; len(suites) > 0 {
			order := ""
			if pref, ok := t.ServerPreference[k]; ok {
				order = " (client's order)"
				if pref {
					order = " (server's order)"
				}
			}
			p.line("  %-15s %s%s", k+" suites", strings.Join(suites, ", "), order)
		}
	}
	if len(t.Groups) > 0 {
		p.line("  groups          %s", strings.Join(t.Groups, ", "))
	}
	for _, e := range t.ProbeErrors {
		p.line("  %s %s", p.yellow("probe error:"), e)
	}
	printVulnsAndFacts(p, t)

	c := r.Certificate
	if len(c.Chain) > 0 {
		p.section("Certificate")
		if f := r.TLS.Facts; f != nil && f.FirstFlight {
			p.line("  %s", p.yellow("read from the server's first flight: no handshake could be completed, the chain is as sent in cleartext"))
		}
		leaf := c.Chain[0]
		p.line("  subject         %s", leaf.Subject)
		p.line("  issuer          %s", leaf.Issuer)
		p.line("  names           %s", strings.Join(append(append([]string{}, leaf.DNSNames...), leaf.IPAddresses...), ", "))
		p.line("  valid until     %s (%d days left)", leaf.NotAfter.Format("2006-01-02"), leaf.DaysLeft)
		p.line("  key             %s %d bits, %s", leaf.KeyType, leaf.KeyBits, leaf.SignatureAlgorithm)
		p.line("  chain           %d certificate(s), OCSP stapled: %v", len(c.Chain), c.OCSPStapled)
		if c.Verification.OK {
			p.line("  verification    %s for %s", p.green("OK"), c.VerifiedName)
		} else {
			p.line("  verification    %s %s", p.red("FAILED"), c.Verification.Error)
		}
	}

	p.findings(r.Findings)
	fmt.Fprintln(w)
}

// printFailedDialogue shows what was exchanged when no TLS session came of
// it: the lines say where the server stopped making sense.
func printFailedDialogue(p *printer, r *check.Report) {
	s := r.StartTLS
	if len(s.Transcript) == 0 {
		if r.Status != starttls.StatusSuccess && !s.Implicit && !r.Has("connect-failed") {
			p.line("  dialogue        %s", p.dim("nothing received"))
		}
		return
	}
	p.line("  dialogue until the failure:")
	p.transcript("    ", s.Transcript)
}

func verdictColor(p *printer, v string) string {
	switch {
	case strings.HasPrefix(v, "pass"):
		return p.green(v)
	case strings.HasPrefix(v, "fail"):
		return p.red(v)
	case strings.HasPrefix(v, "error"):
		return p.yellow(v)
	}
	return p.dim(v)
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSuffix(l, "\r")
}

func sortedKeys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }

// parseFailOnAndDepth reads --fail-on and checks --only, the flags check
// and mail share; a bad value is a usage error.
func parseFailOnAndDepth(failOn, depth string) (check.Severity, error) {
	threshold, err := check.ParseSeverity(failOn)
	if err != nil {
		return 0, exitWith(exitUsage, fmt.Errorf("--fail-on: %w", err))
	}
	if depth != check.Quick && depth != check.Full {
		return 0, exitWith(exitUsage, fmt.Errorf("--only %q: want quick or full", depth))
	}
	return threshold, nil
}
