package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/mail"
)

func newMailCmd() *cobra.Command {
	var (
		resolver, ca, failOn, depth string
		trustAD, asJSON             bool
		smtpPort, httpsPort, conc   int
		timeout                     time.Duration
		localName                   string
		nextCert, nextKey           string
	)
	cmd := &cobra.Command{
		Use:   "mail [flags] DOMAIN...",
		Short: "Audit a mail domain: MX hosts, STARTTLS on each, MTA-STS, DANE, TLS-RPT, REQUIRETLS",
		Long: `mail answers "can mail reach this domain only over verified TLS, or can an attacker
strip STARTTLS?" as a sending MTA sees it. It looks up the MX hosts (null MX, fallback to
the domain's addresses), checks each one's STARTTLS on port 25 with the check engine,
fetches and parses the MTA-STS policy (RFC 8461) and matches every MX against it, looks
up and verifies DANE TLSA records (RFC 7672; trusted only with the AD bit of a resolver
on loopback, or with --trust-ad), reads the TLS-RPT record (RFC 8460) and notes
REQUIRETLS (RFC 8689). All DNS goes through --resolver.

It prints a graded report per domain, or with --json one JSON document per domain
(schema starttls.mail/v1, see docs/mail.md); each MX host's check report is embedded.

Exit status: 0 when no finding (the domain's or an MX host's) reaches --fail-on, 1 when
one does, 2 on usage errors, 3 when DNS failed or no MX host could be reached.`,
		Example: `  starttls mail example.org
  starttls mail --json --fail-on medium example.org example.net
  starttls mail --next-cert /etc/postfix/next/fullchain.pem example.org
  starttls mail --resolver 127.0.0.1:5353 --ca testca.pem --smtp-port 2525 --https-port 8443 good.mail.test`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			threshold, err := parseFailOnAndDepth(failOn, depth)
			if err != nil {
				return err
			}
			if smtpPort <= 0 || smtpPort > 65535 || httpsPort <= 0 || httpsPort > 65535 {
				return exitWith(exitUsage, fmt.Errorf("--smtp-port and --https-port must be 1..65535"))
			}
			for _, d := range args {
				if _, err := mail.NormalizeDomain(d); err != nil {
					return exitWith(exitUsage, err)
				}
			}
			if resolver == "" {
				if resolver, err = mail.SystemResolver(); err != nil {
					return exitWith(exitUsage, fmt.Errorf("no --resolver and %w", err))
				}
			}
			if resolver, err = mail.NormalizeResolver(resolver); err != nil {
				return exitWith(exitUsage, fmt.Errorf("--resolver: %w", err))
			}
			roots, err := (&clientFlags{ca: ca}).roots()
			if err != nil {
				return exitWith(exitUsage, err)
			}
			ctx, stop := signalContext()
			defer stop()
			o := mail.Options{
				Resolver: &mail.Resolver{Addr: resolver, TrustAD: trustAD, Timeout: timeout},
				Roots:    roots, SMTPPort: smtpPort, HTTPSPort: httpsPort, Timeout: timeout,
				Depth: depth, Concurrency: conc, LocalName: localName,
			}
			out := cmd.OutOrStdout()
			if nextCert != "" || nextKey != "" {
				next, err := loadNext(nextCert, nextKey)
				if err != nil {
					return exitWith(exitUsage, err)
				}
				return runRollover(ctx, out, args, next, o, asJSON)
			}
			code := exitOK
			var problems []string
			for _, d := range args {
				r := mail.Run(ctx, d, o)
				if asJSON {
					if err := writeJSON(out, r); err != nil {
						return exitWith(exitFindings, err)
					}
				} else {
					printMailReport(out, r)
				}
				c, why := mailExitCode(r, threshold)
				if c != exitOK {
					problems = append(problems, why)
				}
				code = max(code, c)
			}
			if code != exitOK {
				return exitWith(code, fmt.Errorf("%s", strings.Join(problems, "; ")))
			}
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&resolver, "resolver", "", "DNS resolver host[:port] (default: the first name server of /etc/resolv.conf)")
	fl.BoolVar(&trustAD, "trust-ad", false, "believe the AD bit of a resolver that is not on loopback")
	fl.BoolVar(&asJSON, "json", false, "print one JSON document per domain (schema "+mail.Schema+")")
	fl.StringVar(&ca, "ca", "", "PEM file of extra trusted CA certificates (MX hosts and the MTA-STS fetch)")
	fl.IntVar(&smtpPort, "smtp-port", 25, "SMTP port of the MX hosts (also the TLSA port)")
	fl.IntVar(&httpsPort, "https-port", 443, "HTTPS port of the MTA-STS policy host")
	fl.DurationVar(&timeout, "timeout", 10*time.Second, "deadline for each phase and each DNS query")
	fl.StringVar(&failOn, "fail-on", "high", "exit 1 when a finding has this severity or higher: info, low, medium, high, critical")
	fl.StringVar(&depth, "only", check.Quick, "depth of each MX host's check: quick or full")
	fl.IntVar(&conc, "concurrency", 4, "MX hosts checked at once")
	fl.StringVar(&localName, "local-name", "", "EHLO name; default localhost")
	fl.StringVar(&nextCert, "next-cert", "", "DANE rollover pre-check: PEM chain (leaf first) about to be deployed; says which TLSA records to publish first (docs/mail.md)")
	fl.StringVar(&nextKey, "next-key", "", "like --next-cert with only the next key (PEM public or private key)")
	return cmd
}

func init() {
	rootCmd.AddCommand(newMailCmd())
	rootCmd.AddCommand(newTLSRPTCmd())
}

// mailExitCode: 3 when DNS failed or no MX answered, 1 when a finding of
// the domain or of an MX host's check reaches the threshold.
func mailExitCode(r *mail.Report, threshold check.Severity) (int, string) {
	if r.Status == mail.StatusDNSError || r.Status == mail.StatusUnreachable {
		return exitConnect, fmt.Sprintf("%s: %s (%s)", r.Domain, r.Status, r.Error)
	}
	n := 0
	for _, f := range r.Findings {
		if f.Severity >= threshold {
			n++
		}
	}
	for _, h := range r.MX.Hosts {
		if h.Check == nil {
			continue
		}
		for _, f := range h.Check.Findings {
			if f.Severity >= threshold {
				n++
			}
		}
	}
	if n > 0 {
		return exitFindings, fmt.Sprintf("%s: grade %s, %d finding(s) at or above %s", r.Domain, r.Grade, n, threshold)
	}
	return exitOK, ""
}

func printMailReport(w io.Writer, r *mail.Report) {
	p := newPrinter(w)
	grade := r.Grade
	switch {
	case strings.HasPrefix(grade, "A"):
		grade = p.green(grade)
	case grade == "B" || grade == "C" || grade == "n/a":
		grade = p.yellow(grade)
	default:
		grade = p.red(grade)
	}
	fmt.Fprintf(w, "%s  grade %s  (mail check, %.0f ms)\n", p.bold(r.Domain), grade, r.TotalMS)
	trust := "AD bit trusted"
	if !r.ADTrusted {
		trust = "AD bit not trusted"
	}
	p.line("  resolver        %s (%s)", r.Resolver, trust)
	if r.Error != "" {
		p.line("  %s %s", p.red(r.Status+":"), r.Error)
	}

	p.section("MX")
	switch {
	case r.MX.NullMX && len(r.MX.Hosts) == 0:
		p.line("  null MX: the domain accepts no mail")
	case r.MX.Implicit:
		p.line("  no MX record: the domain's own addresses take mail")
	}
	if len(r.MX.Hosts) > 0 {
		p.line("  DNSSEC          %s", yesNo(p, r.MX.Secure))
	}
	for _, h := range r.MX.Hosts {
		p.line("  %s %s  %s", p.dim(fmt.Sprintf("%3d", h.Preference)), p.bold(h.Name), strings.Join(h.Addresses, ", "))
		if h.CNAME != "" {
			p.line("      alias of    %s", h.CNAME)
		}
		if h.Check == nil {
			continue
		}
		tlsLine := p.red("no") + " (" + string(h.Check.Status) + ")"
		if h.STARTTLS {
			tlsLine = p.green("yes")
			if n := h.Check.TLS.Negotiated; n != nil {
				tlsLine += ", " + n.Version + ", " + n.CipherSuite
			}
		}
		p.line("      STARTTLS    %s", tlsLine)
		if h.STARTTLS {
			cert := p.green("valid for " + h.Name)
			if !h.CertValid {
				cert = p.yellow(h.Check.Certificate.Verification.Error)
			}
			p.line("      certificate %s", cert)
			p.line("      REQUIRETLS  %s", yesNo(p, h.RequireTLS))
		}
		if h.STSMatch != "" {
			p.line("      MTA-STS     matches %s", h.STSMatch)
		}
		if d := h.DANE; d != nil && len(d.Records) > 0 {
			p.line("      DANE        %s at %s (DNSSEC %s)", daneColor(p, d.Verdict), d.Name, yesNo(p, d.Secure))
			for _, t := range d.Records {
				mark := ""
				if t.Matched {
					mark = p.green(" matched")
				} else if t.Problem != "" {
					mark = p.yellow(" " + t.Problem)
				}
				data := t.Data
				if len(data) > 24 {
					data = data[:24] + "..."
				}
				p.line("        TLSA %d %d %d %s%s", t.Usage, t.Selector, t.MatchingType, data, mark)
			}
		}
		p.line("      check       grade %s, %d finding(s)", h.Check.Grade, len(h.Check.Findings))
		for _, f := range h.Check.Findings {
			p.line("        %-8s %s", strings.ToUpper(f.Severity.String()), f.ID)
		}
	}

	if !(r.MX.NullMX && len(r.MX.Hosts) == 0) && r.Status != mail.StatusDNSError {
		p.section("MTA-STS")
		m := r.MTASTS
		switch {
		case m.Policy != nil && m.Mode != "":
			p.line("  record          %s", m.Records[0])
			p.line("  policy          %s", m.URL)
			p.line("  mode            %s, max_age %d, mx %s", modeColor(p, m.Mode), m.Policy.MaxAge, strings.Join(m.Policy.MX, ", "))
		case m.Error != "":
			p.line("  %s", p.yellow(m.Error))
		}
		p.section("DANE")
		p.line("  enabled         %s", yesNo(p, r.DANE.Enabled))
		p.section("TLS-RPT")
		if t := r.TLSRPT; t.Record != nil {
			p.line("  rua             %s", strings.Join(t.Record.RUA, ", "))
		} else {
			p.line("  %s", p.yellow(r.TLSRPT.Error))
		}
		p.section("REQUIRETLS")
		p.line("  every MX        %s", yesNo(p, r.RequireTLS))
	}

	p.findings(r.Findings)
	fmt.Fprintln(w)
}

func yesNo(p *printer, b bool) string {
	if b {
		return p.green("yes")
	}
	return p.dim("no")
}

func daneColor(p *printer, v string) string {
	switch v {
	case mail.DANEPass:
		return p.green(v)
	case mail.DANEFail:
		return p.red(v)
	}
	return p.yellow(v)
}

func modeColor(p *printer, m string) string {
	if m == mail.ModeEnforce {
		return p.green(m)
	}
	return p.yellow(m)
}

func newTLSRPTCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "tlsrpt [flags] FILE...",
		Short: "Summarise RFC 8460 TLS-RPT aggregate reports (JSON, gzip or not)",
		Long: `tlsrpt reads TLS-RPT aggregate reports as senders deliver them to the rua of a
domain's _smtp._tls record (RFC 8460 §4; plain JSON or gzip, "-" for standard input) and
prints, per policy domain and type, the successful and failed sessions and the failures by
result type (starttls-not-supported, certificate-expired, sts-policy-fetch-error, ...).

Exit status: 0 when every file was read, 1 when a file could not be read or parsed (the
others are still summarised), 2 on usage errors.

To collect reports as they arrive (SMTP, HTTPS, IMAP) into a database and summarise
them there, see "tlsrpt serve", "tlsrpt fetch" and "tlsrpt summary" (docs/tlsrpt.md).`,
		Example: `  starttls tlsrpt google.com!example.org!1700000000!1700086400.json.gz
  starttls tlsrpt --json reports/*.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reps := make([]*mail.AggregateReport, len(args))
			errs := make([]error, len(args))
			failed := 0
			for i, f := range args {
				reps[i], errs[i] = readReportFile(cmd.InOrStdin(), f)
				if errs[i] != nil {
					failed++
				}
			}
			s := mail.Summarize(args, reps, errs)
			out := cmd.OutOrStdout()
			if asJSON {
				if err := writeJSON(out, s); err != nil {
					return exitWith(exitFindings, err)
				}
			} else {
				printTLSRPTSummary(out, s)
			}
			if failed > 0 {
				return exitWith(exitFindings, fmt.Errorf("%d of %d report(s) could not be read", failed, len(args)))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print one JSON document (schema "+mail.SummarySchema+")")
	cmd.AddCommand(newTLSRPTServeCmd(), newTLSRPTFetchCmd(), newTLSRPTSummaryCmd())
	return cmd
}

func readReportFile(stdin io.Reader, name string) (*mail.AggregateReport, error) {
	if name == "-" {
		return mail.ReadReport(stdin)
	}
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return mail.ReadReport(f)
}

func printTLSRPTSummary(w io.Writer, s *mail.Summary) {
	p := newPrinter(w)
	p.line("%s", p.bold(fmt.Sprintf("%d report(s)", len(s.Reports))))
	for _, r := range s.Reports {
		if r.Error != "" {
			p.line("  %s %s: %s", p.red("error"), r.File, r.Error)
			continue
		}
		p.line("  %s  %s  %s .. %s  %s", r.File, r.Organization, r.Start.UTC().Format(time.DateOnly), r.End.UTC().Format(time.DateOnly), p.dim(r.ReportID))
	}
	for _, ps := range s.Policies {
		p.section(fmt.Sprintf("%s (%s)", ps.Domain, ps.Type))
		total := ps.Successful + ps.Failed
		rate := 100.0
		if total > 0 {
			rate = 100 * float64(ps.Successful) / float64(total)
		}
		ok := fmt.Sprintf("%.1f%%", rate)
		if ps.Failed > 0 {
			ok = p.yellow(ok)
		} else {
			ok = p.green(ok)
		}
		p.line("  sessions        %d successful, %d failed (%s successful)", ps.Successful, ps.Failed, ok)
		p.line("  reported by     %s", strings.Join(ps.Reporters, ", "))
		for _, f := range ps.Failures {
			name := f.ResultType
			if !f.Known {
				name += p.dim(" (not an RFC 8460 type)")
			}
			p.line("  %-28s %s  %s", name, p.red(fmt.Sprint(f.Sessions)), p.dim(strings.Join(f.MXHosts, ", ")))
		}
	}
	fmt.Fprintln(w)
}
