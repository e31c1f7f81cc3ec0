// Command starttls audits, debugs, serves and proxies STARTTLS.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes shared by every subcommand.
const (
	exitOK       = 0
	exitFindings = 1 // findings at or above --fail-on, or a failed session
	exitUsage    = 2
	exitConnect  = 3 // could not connect
)

// exitError carries an exit code up to main; its message is printed once.
type exitError struct {
	code int
	err  error
}

// Error is empty for a silent exit (nil err): its output is already printed.
func (e *exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e *exitError) Unwrap() error { return e.err }

func exitWith(code int, err error) error { return &exitError{code: code, err: err} }

var rootCmd = &cobra.Command{
	Use:   "starttls",
	Short: "Audit, debug, serve and proxy STARTTLS",
	Long: `starttls speaks the STARTTLS upgrade of SMTP, LMTP, IMAP, POP3 and more,
on the client and the server side, and checks servers for the ways it goes wrong.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int { return runContext(context.Background(), args) }

// runContext runs the command line until it ends or ctx is canceled.
func runContext(ctx context.Context, args []string) int {
	rootCmd.SetArgs(args)
	// Cobra hands the context to a subcommand only when it has none, so a
	// second in-process run would keep the first run's context.
	var setCtx func(*cobra.Command)
	setCtx = func(parent *cobra.Command) {
		for _, c := range parent.Commands() {
			c.SetContext(ctx)
			setCtx(c) // nested subcommands (tlsrpt serve) too
		}
	}
	setCtx(rootCmd)
	err := rootCmd.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	// Errors quote the peer's replies; escaping keeps them inert and on one line.
	if msg := err.Error(); msg != "" {
		fmt.Fprintln(os.Stderr, "starttls:", termSafe(msg))
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	// Cobra's own errors are about flags and arguments.
	return exitUsage
}
