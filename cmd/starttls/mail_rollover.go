package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/starttls-go/starttls/mail"
)

// loadNext reads --next-cert or --next-key.
func loadNext(certFile, keyFile string) (*mail.Next, error) {
	if certFile != "" && keyFile != "" {
		return nil, fmt.Errorf("--next-cert and --next-key exclude each other")
	}
	file, parse, flag := certFile, mail.ParseNextCert, "--next-cert"
	if keyFile != "" {
		file, parse, flag = keyFile, mail.ParseNextKey, "--next-key"
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	n, err := parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", flag, file, err)
	}
	return n, nil
}

// runRollover is mail's --next-cert/--next-key mode. Exit status: 0 when
// every MX host's DANE records will match the next certificate (or there
// are none), 1 when records must be published first or it cannot be
// decided, 3 when DNS failed.
func runRollover(ctx context.Context, w io.Writer, domains []string, next *mail.Next, o mail.Options, asJSON bool) error {
	code := exitOK
	var problems []string
	for _, d := range domains {
		r := mail.Rollover(ctx, d, next, o)
		if asJSON {
			if err := writeJSON(w, r); err != nil {
				return exitWith(exitFindings, err)
			}
		} else {
			printRollover(w, r)
		}
		switch {
		case r.Status != mail.StatusOK:
			code = max(code, exitConnect)
			problems = append(problems, fmt.Sprintf("%s: %s (%s)", r.Domain, r.Status, r.Error))
		case !r.Ready:
			code = max(code, exitFindings)
			problems = append(problems, r.Domain+": the next certificate does not match the published TLSA records yet")
		}
	}
	if code != exitOK {
		return exitWith(code, fmt.Errorf("%s", strings.Join(problems, "; ")))
	}
	return nil
}

func printRollover(w io.Writer, r *mail.RolloverReport) {
	p := newPrinter(w)
	verdict := p.green("ready")
	if !r.Ready {
		verdict = p.red("not ready")
	}
	fmt.Fprintf(w, "%s  DANE rollover %s\n", p.bold(r.Domain), verdict)
	if r.NextSubject != "" {
		p.line("  next            %s, until %s", r.NextSubject, r.NextNotAfter.Format("2006-01-02"))
	}
	p.line("  next key        %s", r.NextTLSA)
	if r.Error != "" {
		p.line("  %s %s", p.red(r.Status+":"), r.Error)
	}
	for _, h := range r.Hosts {
		p.section(h.Name)
		if h.TLSAName != "" {
			ttl := ""
			if h.TTL > 0 {
				ttl = fmt.Sprintf(", TTL %d s", h.TTL)
			}
			p.line("  TLSA            %s (DNSSEC %s%s)", h.TLSAName, yesNo(p, h.Secure), ttl)
		}
		v := h.Verdict
		switch v {
		case mail.RolloverReady, mail.RolloverNoTLSA:
			v = p.green(v)
		case mail.RolloverInsecure:
			v = p.yellow(v)
		default:
			v = p.red(v)
		}
		p.line("  verdict         %s", v)
		if h.Detail != "" {
			p.line("                  %s", h.Detail)
		}
		if h.Plan == nil {
			continue
		}
		if h.Served != "" {
			p.line("  current chain   %s", h.Served)
		}
		for _, rec := range h.Plan.Records {
			p.line("  %s  now %s, next %s", rec.TLSA, rec.Current, rec.Next)
			if rec.Note != "" {
				p.line("      %s", rec.Note)
			}
		}
		for i, s := range h.Plan.Steps {
			p.line("  %d. %s", i+1, s)
		}
	}
	fmt.Fprintln(w)
}
