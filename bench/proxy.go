package main

import (
	"context"
	"fmt"
	"path/filepath"
)

// proxyGet measures Signet in proxy mode (--upstream) in front of the
// stock distribution binary against the same binary reached directly:
// blob GET of a 64 MiB layer and manifest GET by digest. The server side
// gets one core in both runs: the upstream alone when direct, the
// upstream and Signet together when proxied, with wrk on the other core.
// A blob through the proxy costs one more socket read and write per byte,
// on the same core, which is the measured cost of a proxy on this
// machine rather than on one with a core (or a host) of its own. A second
// blob row leaves the upstream its core alone and runs Signet beside wrk
// instead: two cores can be shared between three processes only one of
// these ways.
func proxyGet(ctx context.Context, e *env, o options) ([]row, error) {
	dir := workDir(o, "proxy")
	up, err := startDistribution(ctx, e, dir)
	if err != nil {
		return nil, err
	}
	defer up.stop()
	s, err := startSignet(ctx, e, dir, "signet-proxy", filepath.Join(dir, "signet-data"), "--upstream", "http://"+up.addr)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	img := newImage("bench/proxy", 64<<20)
	// Pushed through Signet: blobs and the manifest land upstream.
	if err := img.push("http://" + s.addr); err != nil {
		return nil, fmt.Errorf("push through the proxy: %w", err)
	}
	blob := "/v2/" + img.repo + "/blobs/" + digestOf(img.layer)
	manifest := "/v2/" + img.repo + "/manifests/" + img.digest
	accept := map[string]string{"Accept": ociManifest}
	if err := checkServes([]*proc{s, up}, blob, nil, img.layer); err != nil {
		return nil, err
	}
	if err := checkServes([]*proc{s, up}, manifest, accept, img.manifest); err != nil {
		return nil, err
	}

	// blobRow measures blob GETs through p against the upstream direct.
	blobRow := func(p *proc, workload, notes string) (row, error) {
		r, err := getRow(ctx, e, o, load{threads: 1, connections: 4, duration: o.duration}, up, p, blob, "MiB/s")
		r.workload, r.baseline, r.target, r.extraNotes = workload, "the same upstream, direct", "≥ 0.9", notes
		r.met = verdict(r.ratio >= 0.9)
		return r, err
	}
	b, err := blobRow(s, "proxy blob-get (64 MiB, c=4)", "the upstream and Signet share the server core; direct, the upstream has it alone")
	if err != nil {
		return nil, err
	}

	// The other way to share two cores: the upstream keeps its core
	// alone in both runs, and Signet runs beside the load generator.
	sc, err := startSignetOn(ctx, e, e.loadCore, dir, "signet-proxy-loadcore", filepath.Join(dir, "signet-data-loadcore"), "--upstream", "http://"+up.addr)
	if err != nil {
		return nil, err
	}
	defer sc.stop()
	if err := checkServes([]*proc{sc}, blob, nil, img.layer); err != nil {
		return nil, err
	}
	bc, err := blobRow(sc, "proxy blob-get, Signet on the load core", "the upstream has the server core alone in both runs; Signet shares the load generator's core")
	if err != nil {
		return nil, err
	}

	ml := load{threads: 1, connections: 32, duration: o.duration, headers: []string{"Accept: " + ociManifest}}
	m, err := getRow(ctx, e, o, ml, up, s, manifest, "req/s")
	if err != nil {
		return nil, err
	}
	m.workload, m.baseline, m.target = "proxy manifest-get (c=32)", "the same upstream, direct", "> 1"
	m.met = verdict(m.ratio > 1)
	return []row{b, bc, m}, nil
}
