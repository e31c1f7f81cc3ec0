// Command scanfleet runs a scantest fleet on loopback for benchmarks
// (bench/scan-vs-zgrab2.sh): it writes the targets, one URL a line, and
// the CA file into a directory, prints "ready", and serves until stdin
// closes or it gets SIGINT/SIGTERM.
//
//	go run ./scan/scantest/scanfleet -dir /tmp/fleet -good 500 -addrs 50
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/starttls-go/starttls/scan/scantest"
)

func main() {
	dir := flag.String("dir", "", "directory for targets.txt and ca.pem (required)")
	addrs := flag.Int("addrs", 50, "loopback addresses 127.0.0.2 … to spread the targets over (at most 253)")
	delay := flag.Duration("delay", 0, "round-trip time in front of the good servers (a delay line: latency without tc netem)")
	trace := flag.String("trace", "", "write the timelines of the first -trace-conns connections to this file")
	traceConns := flag.Int("trace-conns", 2, "connections -trace records")
	n := map[scantest.Kind]*int{}
	for _, k := range scantest.Kinds {
		def := 0
		if k == scantest.Good {
			def = 500
		}
		n[k] = flag.Int(string(k), def, fmt.Sprintf("targets of kind %s (outcome %s)", k, scantest.Want[k]))
	}
	flag.Parse()
	if *dir == "" {
		flag.Usage()
		os.Exit(2)
	}
	counts := map[scantest.Kind]int{}
	for k, v := range n {
		counts[k] = *v
	}
	var f *scantest.Fleet
	var err error
	if *trace != "" {
		tf, terr := os.Create(*trace)
		if terr != nil {
			fmt.Fprintln(os.Stderr, "scanfleet:", terr)
			os.Exit(1)
		}
		defer tf.Close()
		f, err = scantest.StartTraced(*dir, counts, *addrs, *delay, tf, *traceConns)
	} else {
		f, err = scantest.StartDelayed(*dir, counts, *addrs, *delay)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scanfleet:", err)
		os.Exit(1)
	}
	defer f.Close()
	list, err := f.WriteList(*dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "scanfleet:", err)
		os.Exit(1)
	}
	ca, _ := filepath.Abs(f.CAFile)
	fmt.Printf("ready %d targets in %s, CA %s\n", len(f.Targets), list, ca)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	eof := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); close(eof) }()
	select {
	case <-stop:
	case <-eof:
	}
}
