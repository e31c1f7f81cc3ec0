package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/starttls-go/starttls"
	"github.com/starttls-go/starttls/check"
	"github.com/starttls-go/starttls/scan"
)

// scanFlags are scan's flags.
type scanFlags struct {
	input       string
	proto       string
	depth       string
	concurrency int
	rate        float64
	perSubnet   int
	timeout     time.Duration
	retries     int
	ca          string
	out         string
	shard       string
	resume      bool
	summary     bool
	progress    string
	localName   string
	sourceIP    string
	mx          bool
	mxPort      int
}

func newScanCmd() *cobra.Command {
	var f scanFlags
	cmd := &cobra.Command{
		Use:   "scan [flags] [TARGET...]",
		Short: "Check very many servers: streaming, rate-limited, sharded, into JSON lines, SQLite or PostgreSQL",
		Long: `scan runs the check over many targets, from the arguments and from --input (a file,
or - for stdin, one target a line: a URL like smtp://mx.example.org:25, or host[:port]
with --proto; # starts a comment). The input is streamed: memory stays bounded by
--concurrency whatever the number of targets.

Each target gets one record with an outcome (success, connect-refused, connect-timeout,
greeting-timeout, timeout, closed, not-offered, refused, injection, handshake-error,
certificate-error, protocol-error, dns-error, error; with --mx also null-mx), the grade,
the findings and the check's report. certificate-error is a server that upgraded but
whose certificate does not verify (system roots plus --ca, for the target's name). Records
go to --out: sqlite:FILE (default scan.db), jsonl:FILE, - (JSON lines on stdout) or a
PostgreSQL URL. The tables (targets, results, findings) are created by the tool; see
docs/scan.md.

--shard i/n scans only the targets whose stable hash falls in shard i of n, so that n
machines (a Kubernetes Indexed Job, see deploy/) split one list without coordination.
--resume skips targets already stored in --out.

--mx makes every line and argument a mail domain: its MX hosts (at most 10, by
preference; the domain itself when it has no MX records) are each checked on port 25
(--mx-port), a host shared by many domains once per scan. Records carry the domain
and the MX preference; SQL sinks fill an mx table. --shard and --resume then work
by domain.

Exit status: 0 when the scan completed (whatever the servers' outcomes), 1 when the sink
or the input failed or the scan was interrupted, 2 on usage errors.`,
		Example: `  starttls scan --proto smtp --input hosts.txt --out sqlite:scan.db
  zcat targets.gz | starttls scan --input - --rate 500 --concurrency 1000 --out jsonl:out.jsonl
  starttls scan --input list.txt --shard 3/16 --out 'postgres://scan@db:5432/scan?sslmode=verify-full'
  starttls scan --input list.txt --out sqlite:scan.db --resume --summary
  starttls scan --mx --input domains.txt --out sqlite:mx.db
  starttls scan smtp://127.0.0.1:2525 imap://127.0.0.1:1143 --ca ca.pem --out -`,
		RunE: func(cmd *cobra.Command, args []string) error { return runScan(cmd, f, args) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.input, "input", "i", "", "file of targets, one a line, or - for stdin")
	fl.StringVar(&f.proto, "proto", "", "protocol of targets without a scheme ("+protocolList()+")")
	fl.StringVar(&f.depth, "depth", check.Quick, "session (one connection: dialogue, upgrade, certificate), quick (+ TLS versions and the injection probe) or full (the whole check)")
	fl.IntVarP(&f.concurrency, "concurrency", "c", 0, "targets checked at once (0: 100, or with --rate enough to keep it busy: rate × timeout)")
	fl.Float64Var(&f.rate, "rate", 0, "TCP connections opened per second, every probe's included, token bucket (0: unlimited); a target is 1 connection when nothing answers, about 7 for a quick check of a STARTTLS server")
	fl.IntVar(&f.perSubnet, "per-24", 16, "at most this many targets checked at once per IPv4 /24 or IPv6 /48 (0: unlimited)")
	fl.DurationVar(&f.timeout, "timeout", 5*time.Second, "deadline for each phase of each connection (connect, greeting, each exchange, handshake)")
	fl.IntVar(&f.retries, "retries", 1, "extra attempts after a timeout (connect, greeting or later), a dropped connection or an error")
	fl.StringVar(&f.ca, "ca", "", "PEM file of extra trusted CA certificates (for the certificate verdict)")
	fl.StringVarP(&f.out, "out", "o", "sqlite:scan.db", "sink: sqlite:FILE, jsonl:FILE, - (JSON lines on stdout) or postgres://...")
	fl.StringVar(&f.shard, "shard", "", "i/n: scan only shard i (0-based) of n, by a stable hash of the target")
	fl.BoolVar(&f.resume, "resume", false, "skip targets already stored in --out")
	fl.BoolVar(&f.summary, "summary", false, "print the summary as JSON on stdout at the end (it always goes to stderr as text)")
	fl.StringVar(&f.progress, "progress", "auto", "progress bar on stderr: auto (only on a terminal), always or never")
	fl.StringVar(&f.localName, "local-name", "", "name the client gives itself (EHLO/LHLO); default localhost")
	fl.StringVar(&f.sourceIP, "source-ip", "", "local address every connection comes from, or a range (CIDR) whose addresses they take in turn (names resolve to its family only)")
	fl.BoolVar(&f.mx, "mx", false, "targets are mail domains: check each domain's MX hosts (SMTP)")
	fl.IntVar(&f.mxPort, "mx-port", 25, "port of the MX hosts with --mx (for tests and non-standard setups)")
	return cmd
}

func init() { rootCmd.AddCommand(newScanCmd()) }

func runScan(cmd *cobra.Command, f scanFlags, args []string) error {
	if f.depth != check.Quick && f.depth != check.Full && f.depth != check.Session {
		return exitWith(exitUsage, fmt.Errorf("--depth %q: want session, quick or full", f.depth))
	}
	if f.concurrency < 0 || f.retries < 0 || f.rate < 0 || f.perSubnet < 0 || f.timeout <= 0 {
		return exitWith(exitUsage, errors.New("--concurrency, --retries, --rate and --per-24 not negative; --timeout positive"))
	}
	if f.mx && f.proto != "" && f.proto != string(starttls.SMTP) {
		return exitWith(exitUsage, fmt.Errorf("--mx checks SMTP: --proto %q does not apply", f.proto))
	}
	if f.mxPort < 1 || f.mxPort > 65535 {
		return exitWith(exitUsage, fmt.Errorf("--mx-port %d: want 1-65535", f.mxPort))
	}
	if len(args) == 0 && f.input == "" {
		return exitWith(exitUsage, errors.New("no targets: give TARGET arguments or --input FILE|-"))
	}
	var shard scan.Shard
	if f.shard != "" {
		var err error
		if shard, err = scan.ParseShard(f.shard); err != nil {
			return exitWith(exitUsage, fmt.Errorf("--shard: %w", err))
		}
	}
	var source netip.Addr
	var sourceRange netip.Prefix
	if f.sourceIP != "" {
		var err error
		if strings.Contains(f.sourceIP, "/") {
			sourceRange, err = netip.ParsePrefix(f.sourceIP)
		} else {
			source, err = netip.ParseAddr(f.sourceIP)
		}
		if err != nil {
			return exitWith(exitUsage, fmt.Errorf("--source-ip: %w", err))
		}
	}
	proto := starttls.Protocol(f.proto)
	for _, a := range args { // arguments are checked before anything starts
		var err error
		if f.mx {
			_, _, err = scan.ParseDomain(a)
		} else {
			_, _, err = scan.ParseLine(a, proto)
		}
		if err != nil {
			return exitWith(exitUsage, err)
		}
	}
	cf := clientFlags{ca: f.ca}
	roots, err := cf.roots()
	if err != nil {
		return exitWith(exitUsage, err)
	}
	var in io.Reader = strings.NewReader(strings.Join(args, "\n") + "\n")
	var total int64 = -1
	switch f.input {
	case "":
	case "-":
		in = io.MultiReader(in, cmd.InOrStdin())
	default:
		file, err := os.Open(f.input)
		if err != nil {
			return exitWith(exitUsage, fmt.Errorf("--input: %w", err))
		}
		defer file.Close()
		in = io.MultiReader(in, file)
	}
	ctx, stop := signalContext()
	defer stop()
	sink, err := scan.Open(ctx, f.out, cmd.OutOrStdout(), f.resume)
	if err != nil {
		return exitWith(exitUsage, fmt.Errorf("--out: %w", err))
	}
	o := scan.Options{
		Depth: f.depth, Concurrency: f.concurrency, Rate: f.rate, PerSubnet: f.perSubnet, Timeout: f.timeout,
		Retries: f.retries, Roots: roots, LocalName: f.localName, Shard: shard, Resume: f.resume, SourceIP: source, SourceRange: sourceRange,
		MX: f.mx, MXPort: f.mxPort,
		BadLine: func(l scan.Line) { fmt.Fprintln(cmd.ErrOrStderr(), "starttls scan: skipped", l.Err) },
	}
	if showProgress(f.progress) {
		if f.input != "" && f.input != "-" {
			total = countTargets(f.input, proto, shard, f.mx) + int64(len(args))
		}
		o.Progress = scan.NewBar(os.Stderr, max(total, 0))
	}
	sum, err := scan.Run(ctx, in, proto, sink, o)
	if cerr := sink.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("closing %s: %w", f.out, cerr)
	}
	fmt.Fprintln(cmd.ErrOrStderr(), "starttls scan:", sum.String())
	if f.summary {
		if jerr := json.NewEncoder(cmd.OutOrStdout()).Encode(summaryJSON(sum)); jerr != nil && err == nil {
			err = jerr
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("interrupted: records finished so far are stored; run again with --resume")
		}
		return exitWith(exitFindings, err)
	}
	return nil
}

// summaryJSON is the --summary document.
func summaryJSON(s scan.Summary) any {
	return struct {
		Schema string `json:"schema"`
		scan.Summary
		ElapsedS float64 `json:"elapsed_s"`
		Rate     float64 `json:"targets_per_s"`
	}{"starttls.scan-summary/v1", s, s.Elapsed.Seconds(), s.Rate()}
}

func showProgress(mode string) bool {
	switch mode {
	case "always":
		return true
	case "never":
		return false
	}
	return scan.IsTerminal(os.Stderr.Fd())
}

// countTargets counts the targets (domains with mx) of shard in a file,
// for the bar's ETA (a second pass over the file; memory stays flat).
func countTargets(path string, proto starttls.Protocol, shard scan.Shard, mx bool) int64 {
	file, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer file.Close()
	r := scan.NewReader(file, proto)
	if mx {
		r = scan.NewDomainReader(file)
	}
	var n int64
	for {
		l, err := r.Next()
		if err != nil {
			return n
		}
		if l.Err == nil && shard.Contains(l.Key()) {
			n++
		}
	}
}
