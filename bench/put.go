package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// putScript makes every request a new signature: a unique name and unique
// content (hex of the run and request counter inside valid base64),
// spread round-robin over the digests file so no image reaches its
// per-image limit.
const putScript = `
local digests = {}
local counter = 0
local runid = "00000000"
local repo = ""
local pad = string.rep("A", 680)
function init(args)
  runid = args[1]
  repo = args[2]
  for line in io.lines(args[3]) do digests[#digests + 1] = line end
end
function request()
  counter = counter + 1
  local d = digests[(counter % #digests) + 1]
  local suffix = runid .. string.format("%024x", counter)
  local body = '{"schemaVersion":2,"name":"' .. d .. '@' .. suffix ..
    '","type":"atomic","content":"' .. pad .. suffix .. '"}'
  return wrk.format("PUT", "/extensions/v2/" .. repo .. "/signatures/" .. d,
    {["Content-Type"] = "application/json"}, body)
end
`

// putDigests is how many images the PUTs are spread over at least: with
// the default limit of 64 signatures per image, 4,000 hold 256,000 PUTs.
// A run of d (and its 1 s warm-up) gets room for 30,000 PUT/s
// (putCapacity), so a limit never cuts a run short: a 409 or 400 answers
// fast and would flatter the rate.
const putDigests = 4000

func putCapacity(d time.Duration) int {
	return max(putDigests, int((d+time.Second).Seconds()*30000/64)+1)
}

func durablePut(ctx context.Context, e *env, o options) ([]row, error) {
	dir := workDir(o, "put")
	script := filepath.Join(dir, "put.lua")
	if err := os.WriteFile(script, []byte(putScript), 0o644); err != nil {
		return nil, err
	}
	// Seed a template data directory with the images once; each run
	// starts from a fresh copy of it, so every run writes to the same
	// starting state.
	template := filepath.Join(dir, "template")
	s, err := startSignet(ctx, e, dir, "signet-seed", template)
	if err != nil {
		return nil, err
	}
	img := newImage("bench/put", 1024)
	base := "http://" + s.addr
	if err := img.push(base); err != nil {
		s.stop()
		return nil, err
	}
	n := putCapacity(o.duration)
	fmt.Fprintf(os.Stderr, "   pushing %d manifests\n", n)
	digests, err := img.variants(base, n)
	s.stop()
	if err != nil {
		return nil, err
	}
	list := filepath.Join(dir, "digests.txt")
	if err := os.WriteFile(list, []byte(strings.Join(digests, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}

	runID := 0
	measure := func(start func(run string) (*proc, error)) func(context.Context) (result, error) {
		return func(ctx context.Context) (result, error) {
			runID++
			run := fmt.Sprintf("%08x", runID)
			p, err := start(run)
			if err != nil {
				return result{}, err
			}
			defer p.stop()
			l := load{url: "http://" + p.addr, threads: 1, connections: 64, duration: o.duration,
				script: script, scriptArgs: []string{run, img.repo, list}}
			r, _, err := runWrk(ctx, e.loadCore, l)
			return r, err
		}
	}
	naive := measure(func(run string) (*proc, error) {
		addr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		db := filepath.Join(dir, "naive-"+run+".db")
		return startPinned(ctx, dir, "naive-"+run, e.serverCore, addr, "http://"+addr+"/healthz", nil,
			e.self, "naive-put", "-addr", addr, "-db", db)
	})
	signet := measure(func(run string) (*proc, error) {
		data := filepath.Join(dir, "signet-"+run)
		if err := runCmd(ctx, "cp", "-a", template, data); err != nil {
			return nil, err
		}
		return startSignet(ctx, e, dir, "signet-"+run, data)
	})
	b, sg, err := pair(ctx, o, naive, signet)
	if err != nil {
		return nil, err
	}
	r := row{workload: "durable PUT (c=64, fsync on)", baseline: "one bbolt Update per request", unit: "PUT/s",
		base: b.rps, signet: sg.rps, ratio: sg.rps / b.rps, p99Base: b.p99, p99Signet: sg.p99,
		target: "≥ 5, ≥ 15,000 PUT/s", errors: b.errors + sg.errors}
	r.met = verdict(r.ratio >= 5 && sg.rps >= 15000)
	return []row{r}, nil
}
