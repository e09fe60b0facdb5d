// Command bench is Signet's side-by-side benchmark harness (make bench,
// make bench-scale). It starts each baseline and Signet on loopback, pins
// the server to one core and the load generator to the other, runs each
// pair several times alternately, and reports medians and ratios measured
// in the same run. Absolute numbers on shared machines drift; the ratios
// are the result.
//
// It is a tool, not a test: nothing here fails on a figure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "naive-put" {
		// The baseline server for durable PUTs, run as a child process so
		// it can be pinned like the others.
		if err := runNaivePut(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "naive-put:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	runs     int
	duration time.Duration
	only     map[string]bool
	out      string
	signet   string
	scale    bool
	sigs     int
	install  bool
	workDir  string
}

func run() error {
	var o options
	var only string
	var keep bool
	flag.IntVar(&o.runs, "runs", 3, "runs of each pair; the table shows medians")
	flag.DurationVar(&o.duration, "duration", 5*time.Second, "length of one load run")
	flag.StringVar(&only, "only", "", "comma-separated workloads (default all): "+strings.Join(workloadNames(), ","))
	flag.StringVar(&o.out, "out", "bench/results/latest.md", "results file (Markdown)")
	flag.StringVar(&o.signet, "signet", "", "signet binary (default: build ./cmd/signet)")
	flag.BoolVar(&o.scale, "scale", false, "run the scale benchmark instead (make bench-scale)")
	flag.IntVar(&o.sigs, "scale-signatures", 1_000_000, "signatures the scale benchmark loads, 10 per image")
	flag.BoolVar(&o.install, "install", true, "install missing tools (apt-get, go install)")
	flag.BoolVar(&keep, "keep", false, "keep the work directory (stores, scripts, logs) for profiling; its path is printed")
	flag.Parse()
	if o.runs < 1 || o.duration < time.Second {
		return errors.New("-runs must be at least 1 and -duration at least 1s")
	}
	if only != "" {
		o.only = map[string]bool{}
		for _, w := range strings.Split(only, ",") {
			o.only[strings.TrimSpace(w)] = true
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	dir, err := os.MkdirTemp("", "signet-bench-")
	if err != nil {
		return err
	}
	if keep {
		fmt.Fprintf(os.Stderr, "work directory (kept): %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	o.workDir = dir

	env, err := prepare(ctx, &o)
	if err != nil {
		return err
	}
	if o.scale {
		return runScale(ctx, env, o)
	}
	return runWorkloads(ctx, env, o)
}
