package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// seededSignet starts Signet with one image holding two 600-byte
// signatures (a typical RSA-3072 GnuPG signature is about that size).
func seededSignet(ctx context.Context, e *env, dir string) (*proc, *image, error) {
	s, err := startSignet(ctx, e, dir, "signet", filepath.Join(dir, "signet-data"))
	if err != nil {
		return nil, nil, err
	}
	img := newImage("bench/app", 1024)
	base := "http://" + s.addr
	if err := img.push(base); err != nil {
		s.stop()
		return nil, nil, err
	}
	for range 2 {
		if err := putSignature(base, img.repo, img.digest, 600); err != nil {
			s.stop()
			return nil, nil, err
		}
	}
	return s, img, nil
}

// staticCopy fetches path from Signet and writes the byte-identical body
// under root, so nginx serves the same response from a file.
func staticCopy(base, path, root string) error {
	resp, body, err := do("GET", base+path, nil, nil)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	file := filepath.Join(root, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	return os.WriteFile(file, body, 0o644)
}

// checkSame proves both servers answer path with the same bytes.
func checkSame(a, b, path string) error {
	_, x, err := do("GET", a+path, nil, nil)
	if err != nil {
		return err
	}
	_, y, err := do("GET", b+path, nil, nil)
	if err != nil {
		return err
	}
	if !bytes.Equal(x, y) {
		return fmt.Errorf("%s: the two servers answer differently (%d and %d bytes)", path, len(x), len(y))
	}
	return nil
}

// staticPair measures path on Signet against nginx serving root, which
// must answer path with the same bytes (checked first).
func staticPair(ctx context.Context, e *env, o options, name, baseline, path, target string, targetRatio float64, p99Target time.Duration, s *proc, root string) (row, error) {
	base := "http://" + s.addr
	ng, err := startNginx(ctx, e, workDir(o, name), root)
	if err != nil {
		return row{}, err
	}
	defer ng.stop()
	if err := checkSame(base, "http://"+ng.addr, path); err != nil {
		return row{}, err
	}
	l := load{threads: 1, connections: 32, duration: o.duration}
	lb, ls := l, l
	lb.url, ls.url = "http://"+ng.addr+path, base+path
	b, sg, err := pair(ctx, o, wrkRunner(e, lb), wrkRunner(e, ls))
	if err != nil {
		return row{}, err
	}
	r := row{workload: name, baseline: baseline, unit: "req/s",
		base: b.rps, signet: sg.rps, ratio: sg.rps / b.rps, p99Base: b.p99, p99Signet: sg.p99,
		target: target, errors: b.errors + sg.errors}
	ok := r.ratio >= targetRatio
	if p99Target > 0 {
		ok = ok && sg.p99 <= p99Target
	}
	r.met = verdict(ok)
	return r, nil
}

func sigGet(ctx context.Context, e *env, o options) ([]row, error) {
	dir := workDir(o, "sig-get")
	s, img, err := seededSignet(ctx, e, dir)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	path := "/extensions/v2/" + img.repo + "/signatures/" + img.digest
	root := filepath.Join(dir, "static")
	if err := staticCopy("http://"+s.addr, path, root); err != nil {
		return nil, err
	}
	r, err := staticPair(ctx, e, o, "sig-get", "nginx, same bytes as a static file", path,
		"≥ 0.9, p99 ≤ 3 ms", 0.9, 3*time.Millisecond, s, root)
	if err != nil {
		return nil, err
	}
	return []row{r}, nil
}

func lookasideGet(ctx context.Context, e *env, o options) ([]row, error) {
	dir := workDir(o, "lookaside-get")
	s, img, err := seededSignet(ctx, e, dir)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	// nginx serves what `signet export-sigstore` writes; Signet serves the
	// same layout from its store. Exporting reads a backup, as the README
	// says to while the server runs.
	backup := filepath.Join(dir, "backup.db")
	if err := runCmd(ctx, e.signet, "backup", backup, "--registry-url", s.addr, "--insecure"); err != nil {
		return nil, err
	}
	root := filepath.Join(dir, "export")
	if err := runCmd(ctx, e.signet, "export-sigstore", root, "--file", backup); err != nil {
		return nil, err
	}
	path := "/sigstore/" + img.repo + "@" + strings.Replace(img.digest, ":", "=", 1) + "/signature-1"
	// nginx's root must map /sigstore/... onto the export directory.
	link := filepath.Join(dir, "export-root")
	if err := os.MkdirAll(link, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink(root, filepath.Join(link, "sigstore")); err != nil {
		return nil, err
	}
	r, err := staticPair(ctx, e, o, "lookaside-get", "nginx serving the exported tree", path, "≥ 0.9", 0.9, 0, s, link)
	if err != nil {
		return nil, err
	}
	return []row{r}, nil
}

// registryPair starts Signet and the stock distribution binary with the
// same image, of a layer of layerSize bytes.
func registryPair(ctx context.Context, e *env, o options, name string, layerSize int) (*proc, *proc, *image, error) {
	dir := workDir(o, name)
	s, err := startSignet(ctx, e, dir, "signet", filepath.Join(dir, "signet-data"))
	if err != nil {
		return nil, nil, nil, err
	}
	d, err := startDistribution(ctx, e, dir)
	if err != nil {
		s.stop()
		return nil, nil, nil, err
	}
	img := newImage("bench/app", layerSize)
	for _, p := range []*proc{s, d} {
		if err := img.push("http://" + p.addr); err != nil {
			s.stop()
			d.stop()
			return nil, nil, nil, fmt.Errorf("push to %s: %w", p.name, err)
		}
	}
	return s, d, img, nil
}

// checkServes proves every server answers GET path with want.
func checkServes(procs []*proc, path string, hdr map[string]string, want []byte) error {
	for _, p := range procs {
		resp, body, err := do("GET", "http://"+p.addr+path, nil, hdr)
		if err != nil {
			return err
		}
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want) {
			return fmt.Errorf("%s serves %s wrong: %d, %d bytes", p.name, path, resp.StatusCode, len(body))
		}
	}
	return nil
}

// getRow measures l against GET path on base and on signet, alternating,
// and fills the measured part of a row: throughput in unit (req/s, or
// MiB/s for bytes), ratio, p99s and errors.
func getRow(ctx context.Context, e *env, o options, l load, base, signet *proc, path, unit string) (row, error) {
	lb, ls := l, l
	lb.url, ls.url = "http://"+base.addr+path, "http://"+signet.addr+path
	b, sg, err := pair(ctx, o, wrkRunner(e, lb), wrkRunner(e, ls))
	if err != nil {
		return row{}, err
	}
	r := row{unit: unit, base: b.rps, signet: sg.rps, p99Base: b.p99, p99Signet: sg.p99, errors: b.errors + sg.errors}
	if unit == "MiB/s" {
		r.base, r.signet = b.bytesPerS, sg.bytesPerS
	}
	r.ratio = r.signet / r.base
	return r, nil
}

func manifestGet(ctx context.Context, e *env, o options) ([]row, error) {
	s, d, img, err := registryPair(ctx, e, o, "manifest-get", 1024)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	defer d.stop()
	path := "/v2/" + img.repo + "/manifests/" + img.digest
	if err := checkServes([]*proc{s, d}, path, map[string]string{"Accept": ociManifest}, img.manifest); err != nil {
		return nil, err
	}
	l := load{threads: 1, connections: 32, duration: o.duration, headers: []string{"Accept: " + ociManifest}}
	r, err := getRow(ctx, e, o, l, d, s, path, "req/s")
	if err != nil {
		return nil, err
	}
	r.workload, r.baseline, r.target = "manifest-get", "distribution v3.1.2 registry binary", "≥ 5"
	r.met = verdict(r.ratio >= 5)
	return []row{r}, nil
}

func blobGet(ctx context.Context, e *env, o options) ([]row, error) {
	s, d, img, err := registryPair(ctx, e, o, "blob-get", 64<<20)
	if err != nil {
		return nil, err
	}
	defer s.stop()
	defer d.stop()
	path := "/v2/" + img.repo + "/blobs/" + digestOf(img.layer)
	if err := checkServes([]*proc{s, d}, path, nil, img.layer); err != nil {
		return nil, err
	}
	r, err := getRow(ctx, e, o, load{threads: 1, connections: 4, duration: o.duration}, d, s, path, "MiB/s")
	if err != nil {
		return nil, err
	}
	r.workload, r.baseline, r.target = "blob-get (64 MiB, c=4)", "distribution v3.1.2 registry binary", "≥ 1.0"
	r.met = verdict(r.ratio >= 1.0)
	return []row{r}, nil
}
