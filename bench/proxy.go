package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"path/filepath"
)

// proxyGet measures Signet in proxy mode (--upstream) in front of the
// stock distribution binary against the same binary reached directly:
// blob GET of a 64 MiB layer and manifest GET by digest. The server side
// gets one core in both runs: the upstream alone when direct, the
// upstream and Signet together when proxied, with wrk on the other core.
// A blob through the proxy costs one more socket read and write per byte,
// on the same core, which is the measured cost of a proxy on this
// machine rather than on one with a core (or a host) of its own.
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
	for _, p := range []*proc{s, up} {
		resp, body, err := do("GET", "http://"+p.addr+blob, nil, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.layer) {
			return nil, fmt.Errorf("%s serves the blob wrong: %d, %d bytes", p.name, resp.StatusCode, len(body))
		}
		resp, body, err = do("GET", "http://"+p.addr+manifest, nil, accept)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, img.manifest) {
			return nil, fmt.Errorf("%s serves the manifest wrong: %d", p.name, resp.StatusCode)
		}
	}

	var rows []row
	bl := load{threads: 1, connections: 4, duration: o.duration}
	bd, bp := bl, bl
	bd.url, bp.url = "http://"+up.addr+blob, "http://"+s.addr+blob
	b, sg, err := pair(ctx, o, wrkRunner(e, bd), wrkRunner(e, bp))
	if err != nil {
		return nil, err
	}
	r := row{workload: "proxy blob-get (64 MiB, c=4)", baseline: "the same upstream, direct", unit: "MiB/s",
		base: b.bytesPerS, signet: sg.bytesPerS, ratio: sg.bytesPerS / b.bytesPerS, p99Base: b.p99, p99Signet: sg.p99,
		target: "≥ 0.9", errors: b.errors + sg.errors,
		extraNotes: "the upstream and Signet share the server core; direct, the upstream has it alone"}
	r.met = verdict(r.ratio >= 0.9)
	rows = append(rows, r)

	ml := load{threads: 1, connections: 32, duration: o.duration, headers: []string{"Accept: " + ociManifest}}
	md, mp := ml, ml
	md.url, mp.url = "http://"+up.addr+manifest, "http://"+s.addr+manifest
	b, sg, err = pair(ctx, o, wrkRunner(e, md), wrkRunner(e, mp))
	if err != nil {
		return nil, err
	}
	r = row{workload: "proxy manifest-get (c=32)", baseline: "the same upstream, direct", unit: "req/s",
		base: b.rps, signet: sg.rps, ratio: sg.rps / b.rps, p99Base: b.p99, p99Signet: sg.p99,
		target: "> 1", errors: b.errors + sg.errors}
	r.met = verdict(r.ratio > 1)
	return append(rows, r), nil
}
