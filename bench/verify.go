package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
)

// benchLineRE matches a go test benchmark line: name, iterations, ns/op.
var benchLineRE = regexp.MustCompile(`(?m)^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+([0-9.]+) ns/op`)

// verify runs the gpg package's BenchmarkVerify, which measures Signet's
// verifier cold and warm next to containers/image's and a gpg --verify
// subprocess in one process, pinned to the server core.
func verify(ctx context.Context, e *env, o options) ([]row, error) {
	dir := workDir(o, "verify")
	bin := filepath.Join(dir, "gpg.test")
	build := exec.CommandContext(ctx, "go", "test", "-c", "-tags", "containers_image_openpgp", "-o", bin, "./gpg/")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build gpg benchmarks: %w\n%s", err, out)
	}
	ns := map[string][]float64{}
	for range o.runs {
		cmd := exec.CommandContext(ctx, "taskset", "-c", e.serverCore, bin, "-test.run", "^$",
			"-test.bench", "^BenchmarkVerify$", "-test.benchtime", "1s")
		cmd.Dir = "gpg" // the fixtures are in gpg/testdata
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("gpg benchmarks: %w\n%s", err, out)
		}
		for _, m := range benchLineRE.FindAllStringSubmatch(string(out), -1) {
			v, _ := strconv.ParseFloat(m[2], 64)
			ns[m[1]] = append(ns[m[1]], v)
		}
	}
	med := func(name string) float64 { return medianOf(ns[name]) }
	var rows []row
	for _, key := range []string{"rsa3072", "ed25519"} {
		cold, warm := med("Verify/"+key+"/signet-uncached"), med("Verify/"+key+"/signet-cached")
		if cold == 0 || warm == 0 {
			return nil, fmt.Errorf("no signet figures for %s", key)
		}
		for _, c := range []struct{ label, bench string }{
			{"gpg --verify subprocess", "gnupg-subprocess"},
			{"containers/image mechanism", "containers-image-mechanism"},
			{"containers/image VerifyDockerManifestSignature", "containers-image-VerifyDockerManifestSignature"},
		} {
			b := med("Verify/" + key + "/" + c.bench)
			if b == 0 {
				continue
			}
			for _, s := range []struct {
				label string
				v     float64
			}{{"cold", cold}, {"warm cache", warm}} {
				rows = append(rows, row{workload: "verify " + key + ", " + s.label, baseline: c.label, unit: "ns/op",
					base: b, signet: s.v, ratio: b / s.v, target: "report"})
			}
		}
	}
	return rows, nil
}
