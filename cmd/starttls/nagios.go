package main

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/exporter"
)

// Plugin states and exit codes of the Monitoring Plugins guidelines.
const (
	nagiosOK = iota
	nagiosWarning
	nagiosCritical
	nagiosUnknown
)

var nagiosNames = [...]string{"OK", "WARNING", "CRITICAL", "UNKNOWN"}

// nagiosThresholds decide a report's state.
type nagiosThresholds struct {
	WarnDays, CritDays int            // certificate days left below which
	WarnOn, CritOn     check.Severity // a finding at or above which
}

// nagiosFlags are check's --nagios options.
type nagiosFlags struct {
	on                 bool
	warnDays, critDays int
	warnOn, critOn     string
	th                 nagiosThresholds
}

// register adds the flags and makes every usage error of a --nagios run
// an UNKNOWN line on stdout with exit 3, as the plugin guidelines want;
// without --nagios nothing changes.
func (n *nagiosFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.BoolVar(&n.on, "nagios", false, "Nagios/Icinga plugin mode: one status line with perfdata, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
	fl.IntVar(&n.warnDays, "warn-days", 30, "with --nagios: WARNING when the certificate has fewer days left")
	fl.IntVar(&n.critDays, "crit-days", 7, "with --nagios: CRITICAL when the certificate has fewer days left")
	fl.StringVar(&n.warnOn, "warn-on", "medium", "with --nagios: WARNING for a finding of this severity or higher")
	fl.StringVar(&n.critOn, "crit-on", "high", "with --nagios: CRITICAL for a finding of this severity or higher")

	unknown := func(c *cobra.Command, err error) error {
		if err == nil || !n.on {
			return err
		}
		var ee *exitError
		if errors.As(err, &ee) && ee.err == nil {
			return err // a plugin state, already printed
		}
		fmt.Fprintf(c.OutOrStdout(), "STARTTLS UNKNOWN - %s\n", oneLine(err.Error()))
		return exitWith(nagiosUnknown, nil)
	}
	args := cmd.Args
	cmd.Args = func(c *cobra.Command, a []string) error { return unknown(c, args(c, a)) }
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		// Flags before the bad one are parsed: --nagios first is seen.
		return unknown(c, err)
	})
	run := cmd.RunE
	cmd.RunE = func(c *cobra.Command, a []string) error {
		if n.on {
			if err := n.validate(c); err != nil {
				return unknown(c, err)
			}
		}
		return unknown(c, run(c, a))
	}
}

func (n *nagiosFlags) validate(c *cobra.Command) error {
	var err error
	if n.th.WarnOn, err = check.ParseSeverity(n.warnOn); err != nil {
		return fmt.Errorf("--warn-on: %w", err)
	}
	if n.th.CritOn, err = check.ParseSeverity(n.critOn); err != nil {
		return fmt.Errorf("--crit-on: %w", err)
	}
	if n.warnDays < 0 || n.critDays < 0 {
		return errors.New("--warn-days and --crit-days must not be negative")
	}
	if c.Flags().Changed("json") {
		return errors.New("--nagios and --json exclude each other")
	}
	n.th.WarnDays, n.th.CritDays = n.warnDays, n.critDays
	return nil
}

// report prints the plugin output and returns the state as a silent
// exit (the output is the message).
func (n *nagiosFlags) report(w io.Writer, reports []*check.Report) error {
	code, text := nagiosOutput(reports, n.th)
	fmt.Fprint(w, text)
	if code == nagiosOK {
		return nil
	}
	return exitWith(code, nil)
}

// nagiosState judges one report: CRITICAL when no TLS session was
// established (a service that should speak TLS and does not is down, not
// unknown), for a finding at CritOn or a certificate under CritDays;
// WARNING likewise with the warning thresholds. reasons say why.
func nagiosState(r *check.Report, th nagiosThresholds) (state int, reasons []string) {
	raise := func(s int, why string) {
		state = max(state, s)
		reasons = append(reasons, why)
	}
	if r.Status != starttls.StatusSuccess || !r.StartTLS.Upgraded {
		why := string(r.Status)
		if r.Error != "" {
			why += ": " + r.Error
		}
		raise(nagiosCritical, why)
	}
	if len(r.Certificate.Chain) > 0 {
		switch d := r.Certificate.Chain[0].DaysLeft; {
		case d < th.CritDays:
			raise(nagiosCritical, fmt.Sprintf("certificate %d days left (< %d)", d, th.CritDays))
		case d < th.WarnDays:
			raise(nagiosWarning, fmt.Sprintf("certificate %d days left (< %d)", d, th.WarnDays))
		}
	}
	for _, f := range r.Findings {
		switch {
		case f.Severity >= th.CritOn:
			raise(nagiosCritical, fmt.Sprintf("%s (%s)", f.ID, f.Severity))
		case f.Severity >= th.WarnOn:
			raise(nagiosWarning, fmt.Sprintf("%s (%s)", f.ID, f.Severity))
		}
	}
	return state, reasons
}

// nagiosSummary is one target's text: what it is, then why it is not OK.
func nagiosSummary(r *check.Report, reasons []string) string {
	var parts []string
	if r.StartTLS.Upgraded {
		parts = append(parts, "grade "+r.Grade)
	}
	if r.TLS.Negotiated != nil {
		parts = append(parts, r.TLS.Negotiated.Version)
	}
	if len(r.Certificate.Chain) > 0 {
		parts = append(parts, fmt.Sprintf("cert %d days left", r.Certificate.Chain[0].DaysLeft))
	}
	s := r.Target
	if len(parts) > 0 {
		s += " " + strings.Join(parts, ", ")
	}
	if len(reasons) > 0 {
		s += ": " + strings.Join(reasons, ", ")
	}
	return oneLine(s)
}

// nagiosPerfdata is one target's perfdata, labels prefixed with prefix.
// Thresholds use the guidelines' range syntax: "30:" alerts below 30,
// "0" alerts above 0.
func nagiosPerfdata(r *check.Report, th nagiosThresholds, prefix string) []string {
	var p []string
	if len(r.Certificate.Chain) > 0 {
		p = append(p, fmt.Sprintf("%sdays_left=%d;%d:;%d:;;", prefix, r.Certificate.Chain[0].DaysLeft, th.WarnDays, th.CritDays))
	}
	if r.StartTLS.Upgraded {
		p = append(p, fmt.Sprintf("%shandshake_ms=%.3fms;;;0;", prefix, r.Timings.HandshakeMS))
	}
	p = append(p, fmt.Sprintf("%stotal_ms=%.3fms;;;0;", prefix, r.Timings.TotalMS))
	counts := map[check.Severity]int{}
	for _, f := range r.Findings {
		counts[f.Severity]++
	}
	for _, s := range []check.Severity{check.Critical, check.High, check.Medium, check.Low, check.Info} {
		warn, crit := "", ""
		if s >= th.CritOn {
			crit = "0"
		} else if s >= th.WarnOn {
			warn = "0"
		}
		p = append(p, fmt.Sprintf("%sfindings_%s=%d;%s;%s;0;", prefix, s, counts[s], warn, crit))
	}
	p = append(p, fmt.Sprintf("%sgrade=%s;;;0;5", prefix, num(exporter.GradeValue(r.Grade))))
	return p
}

// nagiosOutput is the whole plugin output and its exit code. One target:
// one line. Several: the worst state wins; a summary line carries every
// target's perfdata, then one line per target follows (long output).
func nagiosOutput(reports []*check.Report, th nagiosThresholds) (int, string) {
	if len(reports) == 0 {
		return nagiosUnknown, "STARTTLS UNKNOWN - no target\n"
	}
	states := make([]int, len(reports))
	lines := make([]string, len(reports))
	var perf []string
	worst := nagiosOK
	for i, r := range reports {
		s, why := nagiosState(r, th)
		states[i], lines[i] = s, nagiosSummary(r, why)
		worst = max(worst, s)
		prefix := ""
		if len(reports) > 1 {
			prefix = perfLabel(fmt.Sprintf("%s_%d", r.Host, r.Port)) + "_"
		}
		perf = append(perf, nagiosPerfdata(r, th, prefix)...)
	}
	var b strings.Builder
	if len(reports) == 1 {
		fmt.Fprintf(&b, "STARTTLS %s - %s | %s\n", nagiosNames[worst], lines[0], strings.Join(perf, " "))
		return worst, b.String()
	}
	n := [4]int{}
	for _, s := range states {
		n[s]++
	}
	fmt.Fprintf(&b, "STARTTLS %s - %d targets: %d critical, %d warning, %d ok | %s\n",
		nagiosNames[worst], len(reports), n[nagiosCritical], n[nagiosWarning], n[nagiosOK], strings.Join(perf, " "))
	for i := range reports {
		fmt.Fprintf(&b, "%s - %s\n", nagiosNames[states[i]], lines[i])
	}
	return worst, b.String()
}

var unsafeLabel = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// perfLabel keeps a label to characters every perfdata consumer (RRD,
// Graphite) takes, so no quoting is needed.
func perfLabel(s string) string { return unsafeLabel.ReplaceAllString(s, "_") }

// oneLine keeps the peer's text from breaking the plugin format: a line
// break would start the long output, a "|" the perfdata.
func oneLine(s string) string {
	s = termSafe(s)
	return strings.NewReplacer("\r", " ", "\n", " ", "|", "/").Replace(s)
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }
