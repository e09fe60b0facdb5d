package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Scale-out: durable PUT throughput and GET latency of Signet on bbolt,
// on etcd with one replica, and on etcd with three replicas sharing it,
// in the same run. The images are declared external
// (signatures.externalRepositories), so replicas need no shared blob
// store for the signature API; the PUT script and the digests are the
// durable-PUT workload's.
func replicasBench(ctx context.Context, e *env, o options) ([]row, error) {
	dir := workDir(o, "replicas")
	script := filepath.Join(dir, "put.lua")
	if err := os.WriteFile(script, []byte(putScript), 0o644); err != nil {
		return nil, err
	}
	getLua := filepath.Join(dir, "get.lua")
	if err := os.WriteFile(getLua, []byte(getScript), 0o644); err != nil {
		return nil, err
	}
	var digests, paths []string
	for range putDigests {
		d := digestOf(randomBytes(32))
		digests = append(digests, d)
		paths = append(paths, "/extensions/v2/bench/ext/signatures/"+d)
	}
	list := filepath.Join(dir, "digests.txt")
	if err := os.WriteFile(list, []byte(strings.Join(digests, "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}
	pathList := filepath.Join(dir, "paths.txt")
	if err := os.WriteFile(pathList, []byte(strings.Join(paths[:100], "\n")+"\n"), 0o644); err != nil {
		return nil, err
	}

	runID := 0
	// measure starts n replicas with config yaml, runs the PUT load split
	// over them, then the GET load, and stops them.
	measure := func(label string, n int, yaml func(run string) (string, error)) (put, get result, err error) {
		runID++
		run := fmt.Sprintf("%08x", runID+0x100)
		cfgYAML, err := yaml(run)
		if err != nil {
			return put, get, err
		}
		cfg := filepath.Join(dir, "signet-"+run+".yaml")
		if err := os.WriteFile(cfg, []byte(cfgYAML), 0o644); err != nil {
			return put, get, err
		}
		var procs []*proc
		defer func() {
			for _, p := range procs {
				p.stop()
			}
		}()
		for i := range n {
			p, err := startSignet(ctx, e, dir, fmt.Sprintf("%s-%s-%d", label, run, i), filepath.Join(dir, "data-"+run+fmt.Sprint(i)), "--config", cfg)
			if err != nil {
				return put, get, err
			}
			procs = append(procs, p)
		}
		split := func(l load, args func(i int) []string) (result, error) {
			rs := make([]result, n)
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i, p := range procs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					li := l
					li.url = "http://" + p.addr
					li.connections = l.connections / n
					li.scriptArgs = args(i)
					rs[i], _, errs[i] = runWrk(ctx, e.loadCore, li)
				}()
			}
			wg.Wait()
			var sum result
			for i, r := range rs {
				if errs[i] != nil {
					return sum, errs[i]
				}
				sum.rps += r.rps
				sum.errors += r.errors
				sum.p99 = max(sum.p99, r.p99)
			}
			return sum, nil
		}
		// Each replica's writers get their own run id, so names stay
		// unique across replicas.
		put, err = split(load{threads: 1, connections: 64, duration: o.duration, script: script},
			func(i int) []string { return []string{fmt.Sprintf("%s%02x", run[:6], i), "bench/ext", list} })
		if err != nil {
			return put, get, err
		}
		get, err = split(load{threads: 1, connections: 30, duration: o.duration, script: getLua},
			func(int) []string { return []string{pathList} })
		return put, get, err
	}

	etcdDir := filepath.Join(dir, "etcd")
	etcd, endpoint, err := startEtcd(ctx, e, etcdDir)
	if err != nil {
		return nil, err
	}
	defer etcd.stop()
	common := "signatures:\n  externalRepositories: [\"bench/**\"]\nlog:\n  accessLog: true\n"
	bolt := func(string) (string, error) { return "version: 1\n" + common, nil }
	onEtcd := func(run string) (string, error) {
		return fmt.Sprintf("version: 1\n%sstorage:\n  backend: etcd\n  etcd:\n    endpoints: [%s]\n    prefix: /bench-%s/\n", common, endpoint, run), nil
	}
	var rows []row
	type side struct{ put, get []result }
	var boltS, one, three side
	for i := range o.runs {
		for _, c := range []struct {
			s     *side
			label string
			n     int
			yaml  func(string) (string, error)
		}{{&boltS, "bolt", 1, bolt}, {&one, "etcd1", 1, onEtcd}, {&three, "etcd3", 3, onEtcd}} {
			p, g, err := measure(c.label, c.n, c.yaml)
			if err != nil {
				return nil, fmt.Errorf("%s run %d: %w", c.label, i+1, err)
			}
			fmt.Fprintf(os.Stderr, "   run %d %s: PUT %.0f/s p99 %s, GET %.0f/s p99 %s\n", i+1, c.label, p.rps, p.p99, g.rps, g.p99)
			c.s.put, c.s.get = append(c.s.put, p), append(c.s.get, g)
		}
	}
	bp, bg := median(boltS.put), median(boltS.get)
	op, og := median(one.put), median(one.get)
	tp, tg := median(three.put), median(three.get)
	rows = append(rows,
		row{workload: "durable PUT, etcd, 1 replica", baseline: "Signet on bbolt", unit: "PUT/s", base: bp.rps, signet: op.rps,
			ratio: op.rps / bp.rps, p99Base: bp.p99, p99Signet: op.p99, target: "report", errors: bp.errors + op.errors},
		row{workload: "durable PUT, etcd, 3 replicas", baseline: "etcd, 1 replica", unit: "PUT/s", base: op.rps, signet: tp.rps,
			ratio: tp.rps / op.rps, p99Base: op.p99, p99Signet: tp.p99, target: "report", errors: tp.errors},
		row{workload: "signature GET, etcd, 1 replica", baseline: "Signet on bbolt", unit: "req/s", base: bg.rps, signet: og.rps,
			ratio: og.rps / bg.rps, p99Base: bg.p99, p99Signet: og.p99, target: "report", errors: bg.errors + og.errors},
		row{workload: "signature GET, etcd, 3 replicas", baseline: "etcd, 1 replica", unit: "req/s", base: og.rps, signet: tg.rps,
			ratio: tg.rps / og.rps, p99Base: og.p99, p99Signet: tg.p99, target: "report", errors: tg.errors,
			extraNotes: "all replicas, etcd and the load share this machine's 2 cores (servers and etcd on CPU 0, wrk on CPU 1), so three replicas cannot be faster here; the rows show what sharing etcd costs, not how replicas scale"},
	)
	return rows, nil
}

// startEtcd runs Debian's etcd on loopback, pinned with the servers.
func startEtcd(ctx context.Context, e *env, dir string) (*proc, string, error) {
	client, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	peer, err := freeAddr()
	if err != nil {
		return nil, "", err
	}
	cu, pu := "http://"+client, "http://"+peer
	p, err := startPinned(ctx, filepath.Dir(dir), "etcd", e.serverCore, client, cu+"/health", nil, "etcd",
		"--name", "bench", "--data-dir", dir, "--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu, "--initial-cluster", "bench="+pu,
		"--initial-cluster-state", "new", "--log-level", "warn")
	if err != nil {
		return nil, "", err
	}
	return p, cu, nil
}
