package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// result is one load run.
type result struct {
	rps       float64       // requests per second
	p50, p99  time.Duration // latency percentiles
	bytesPerS float64       // transfer rate
	errors    int64         // non-2xx/3xx responses and socket errors
	requests  int64
}

// load describes one wrk invocation.
type load struct {
	url         string
	threads     int
	connections int
	duration    time.Duration
	headers     []string
	script      string // Lua script path
	scriptArgs  []string
}

var (
	rpsRE      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	xferRE     = regexp.MustCompile(`Transfer/sec:\s+([0-9.]+)([KMG]?B)`)
	pctRE      = regexp.MustCompile(`(?m)^\s+(50|99)(?:\.0+)?%\s+([0-9.]+)(us|ms|s)\s*$`)
	non2xxRE   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
	sockErrRE  = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
	requestsRE = regexp.MustCompile(`(\d+) requests in`)
)

// runWrk runs wrk pinned to core and parses its report.
func runWrk(ctx context.Context, core string, l load) (result, string, error) {
	args := []string{"-c", core, "wrk", "-t", strconv.Itoa(l.threads), "-c", strconv.Itoa(l.connections),
		"-d", fmt.Sprintf("%ds", int(l.duration.Seconds())), "--latency", "--timeout", "10s"}
	for _, h := range l.headers {
		args = append(args, "-H", h)
	}
	if l.script != "" {
		args = append(args, "-s", l.script)
	}
	args = append(args, l.url)
	if len(l.scriptArgs) > 0 {
		args = append(args, "--")
		args = append(args, l.scriptArgs...)
	}
	out, err := exec.CommandContext(ctx, "taskset", args...).CombinedOutput()
	text := string(out)
	if err != nil {
		return result{}, text, fmt.Errorf("wrk: %w\n%s", err, text)
	}
	r, err := parseWrk(text)
	return r, text, err
}

func parseWrk(text string) (result, error) {
	var r result
	m := rpsRE.FindStringSubmatch(text)
	if m == nil {
		return r, fmt.Errorf("no Requests/sec in wrk output:\n%s", text)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range pctRE.FindAllStringSubmatch(text, -1) {
		d := parseLatency(m[2], m[3])
		if m[1] == "50" {
			r.p50 = d
		} else {
			r.p99 = d
		}
	}
	if m := xferRE.FindStringSubmatch(text); m != nil {
		v, _ := strconv.ParseFloat(m[1], 64)
		switch m[2] {
		case "KB":
			v *= 1 << 10
		case "MB":
			v *= 1 << 20
		case "GB":
			v *= 1 << 30
		}
		r.bytesPerS = v
	}
	if m := non2xxRE.FindStringSubmatch(text); m != nil {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		r.errors += n
	}
	if m := sockErrRE.FindStringSubmatch(text); m != nil {
		for _, s := range m[1:] {
			n, _ := strconv.ParseInt(s, 10, 64)
			r.errors += n
		}
	}
	if m := requestsRE.FindStringSubmatch(text); m != nil {
		r.requests, _ = strconv.ParseInt(m[1], 10, 64)
	}
	return r, nil
}

func parseLatency(v, unit string) time.Duration {
	f, _ := strconv.ParseFloat(v, 64)
	switch strings.ToLower(unit) {
	case "us":
		return time.Duration(f * float64(time.Microsecond))
	case "ms":
		return time.Duration(f * float64(time.Millisecond))
	default:
		return time.Duration(f * float64(time.Second))
	}
}
