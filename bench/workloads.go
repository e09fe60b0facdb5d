package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// workload is one side-by-side comparison.
type workload struct {
	name string
	run  func(ctx context.Context, e *env, o options) ([]row, error)
}

func workloads() []workload {
	return []workload{
		{"sig-get", sigGet},
		{"lookaside-get", lookasideGet},
		{"put", durablePut},
		{"manifest-get", manifestGet},
		{"blob-get", blobGet},
		{"proxy", proxyGet},
		{"verify", verify},
		{"replicas", replicasBench},
	}
}

func workloadNames() []string {
	var names []string
	for _, w := range workloads() {
		names = append(names, w.name)
	}
	return names
}

// row is one line of the results table.
type row struct {
	workload string
	baseline string
	unit     string // what value measures
	base     float64
	signet   float64
	// ratio is signet/base for throughput, base/signet for times.
	ratio      float64
	p99Base    time.Duration
	p99Signet  time.Duration
	target     string
	met        string // "yes", "no" or "" when no target applies
	errors     int64
	extraNotes string
}

func runWorkloads(ctx context.Context, e *env, o options) error {
	var rows []row
	for _, w := range workloads() {
		if o.only != nil && !o.only[w.name] {
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s\n", w.name)
		dir := filepath.Join(o.workDir, w.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		r, err := w.run(ctx, e, o)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		rows = append(rows, r...)
		for _, x := range r {
			fmt.Fprintln(os.Stderr, formatRow(x))
		}
	}
	table := renderTable(rows, o)
	fmt.Println(table)
	return writeResults(o.out, e, table, o)
}

// pair alternates measure(baseline) and measure(signet) o.runs times and
// returns the medians, so drift on a shared machine hits both sides.
func pair(ctx context.Context, o options, base, signet func(context.Context) (result, error)) (result, result, error) {
	var bs, ss []result
	for i := range o.runs {
		b, err := base(ctx)
		if err != nil {
			return result{}, result{}, fmt.Errorf("baseline run %d: %w", i+1, err)
		}
		s, err := signet(ctx)
		if err != nil {
			return result{}, result{}, fmt.Errorf("signet run %d: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "   run %d: baseline %.0f/s p99 %s, signet %.0f/s p99 %s\n", i+1, b.rps, b.p99, s.rps, s.p99)
		bs, ss = append(bs, b), append(ss, s)
	}
	return median(bs), median(ss), nil
}

// medianOf is the median of v (v is reordered).
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// median takes each field's median independently.
func median(rs []result) result {
	pick := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		return medianOf(v)
	}
	var errs int64
	for _, r := range rs {
		errs += r.errors
	}
	return result{
		rps:       pick(func(r result) float64 { return r.rps }),
		p50:       time.Duration(pick(func(r result) float64 { return float64(r.p50) })),
		p99:       time.Duration(pick(func(r result) float64 { return float64(r.p99) })),
		bytesPerS: pick(func(r result) float64 { return r.bytesPerS }),
		errors:    errs,
	}
}

// wrkRunner returns a measurement of l against a running server, after a
// one-second warm-up.
func wrkRunner(e *env, l load) func(context.Context) (result, error) {
	return func(ctx context.Context) (result, error) {
		warm := l
		warm.duration = time.Second
		if _, _, err := runWrk(ctx, e.loadCore, warm); err != nil {
			return result{}, err
		}
		r, _, err := runWrk(ctx, e.loadCore, l)
		return r, err
	}
}

// startSignet starts signet serve on dataDir, pinned, with its default
// configuration (access log on, to a file as nginx's is).
func startSignet(ctx context.Context, e *env, dir, label, dataDir string, extra ...string) (*proc, error) {
	return startSignetOn(ctx, e, e.serverCore, dir, label, dataDir, extra...)
}

// startSignetOn is startSignet pinned to core.
func startSignetOn(ctx context.Context, e *env, core, dir, label, dataDir string, extra ...string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	args := append([]string{"serve", "--addr", addr, "--data-dir", dataDir}, extra...)
	return startPinned(ctx, dir, label, core, addr, "http://"+addr+"/readyz", nil, e.signet, args...)
}

// startNginx serves root as static files with one worker, pinned.
func startNginx(ctx context.Context, e *env, dir, root string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "nginx.conf")
	// keepalive_requests is raised from its default of 1,000 so nginx,
	// like Go, keeps connections open for the whole run: the baseline
	// is nginx at its best, not paying for reconnects.
	body := fmt.Sprintf(`worker_processes 1;
daemon off;
user root;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log;
events { worker_connections 1024; }
http {
    access_log %[1]s/nginx-access.log;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {
        listen %[2]s;
        root %[3]s;
        default_type "application/json; charset=utf-8";
        location / { }
    }
}
`, dir, addr, root)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, err
	}
	nginx := "nginx"
	if _, err := exec.LookPath(nginx); err != nil {
		nginx = "/usr/sbin/nginx"
	}
	return startPinned(ctx, dir, "nginx", e.serverCore, addr, "", nil, nginx, "-c", conf, "-p", dir)
}

// startDistribution runs the stock distribution registry binary with
// filesystem storage in dir, as its documentation configures it.
func startDistribution(ctx context.Context, e *env, dir string) (*proc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "registry.yml")
	body := fmt.Sprintf(`version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: %s/registry-data
  delete:
    enabled: true
http:
  addr: %s
`, dir, addr)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		return nil, err
	}
	return startPinned(ctx, dir, "distribution", e.serverCore, addr, "http://"+addr+"/v2/", nil, e.registry, "serve", conf)
}

func workDir(o options, name string) string { return filepath.Join(o.workDir, name) }

func formatRow(r row) string {
	return fmt.Sprintf("   %s vs %s: %s vs %s, ratio %.2f, p99 %s vs %s, errors %d",
		r.workload, r.baseline, fmtVal(r.signet, r.unit), fmtVal(r.base, r.unit), r.ratio, r.p99Signet, r.p99Base, r.errors)
}

func renderTable(rows []row, o options) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| Workload | Baseline | Signet | Baseline | Ratio | Signet p99 | Baseline p99 | Target | Met |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range rows {
		p99s, p99b := "", ""
		if r.p99Signet > 0 {
			p99s = fmtDur(r.p99Signet)
		}
		if r.p99Base > 0 {
			p99b = fmtDur(r.p99Base)
		}
		met := r.met
		if r.errors > 0 {
			// Errors answer fast and would flatter the rate: a run
			// with any cannot meet its target.
			if met != "" {
				met = "no"
			}
			met += fmt.Sprintf(" (%d errors)", r.errors)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %.2f | %s | %s | %s | %s |\n",
			r.workload, r.baseline, fmtVal(r.signet, r.unit), fmtVal(r.base, r.unit), r.ratio, p99s, p99b, r.target, met)
	}
	notes := ""
	for _, r := range rows {
		if r.extraNotes != "" {
			notes += "- " + r.workload + ": " + r.extraNotes + "\n"
		}
	}
	if notes != "" {
		b.WriteString("\n" + notes)
	}
	fmt.Fprintf(&b, "\nMedians of %d alternating runs of %s each (wrk -t1, pinned: server on CPU 0, load on CPU 1).\n", o.runs, o.duration)
	return b.String()
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "MiB/s":
		return fmt.Sprintf("%.0f MiB/s", v/(1<<20))
	case "ns/op":
		return fmtDur(time.Duration(v))
	}
	return fmt.Sprintf("%.0f %s", v, unit)
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	default:
		return fmt.Sprintf("%.0f µs", float64(d)/float64(time.Microsecond))
	}
}

func writeResults(path string, e *env, table string, o options) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\nWritten by `make bench` (bench/) on %s.\n\n## Machine\n\n%s\n## Results\n\n%s",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), e.machine, table)
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}
