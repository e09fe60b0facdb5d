package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

// Pinned versions of what the harness installs.
const (
	distributionModule = "github.com/distribution/distribution/v3/cmd/registry@v3.1.2"
)

// env is what the workloads run with.
type env struct {
	signet   string // the Signet binary under test
	registry string // the stock distribution registry binary
	self     string // this harness, for its naive-put child
	gobin    string
	machine  string // Markdown description of the machine
	// serverCore and loadCore are the CPUs the server and the load
	// generator are pinned to. With one CPU both share it.
	serverCore, loadCore string
}

func prepare(ctx context.Context, o *options) (*env, error) {
	e := &env{serverCore: "0", loadCore: "1"}
	if runtime.NumCPU() < 2 {
		e.loadCore = "0"
	}
	gopath, err := output(ctx, "go", "env", "GOPATH")
	if err != nil {
		return nil, fmt.Errorf("go env GOPATH: %w", err)
	}
	e.gobin = filepath.Join(strings.TrimSpace(gopath), "bin")
	if e.self, err = os.Executable(); err != nil {
		return nil, err
	}

	var apt []string
	for _, tool := range []struct{ cmd, pkg string }{
		{"wrk", "wrk"}, {"nginx", "nginx"}, {"taskset", "util-linux"}, {"gpg", "gnupg"}, {"etcd", "etcd-server"},
	} {
		if _, err := exec.LookPath(tool.cmd); err != nil {
			if _, err := os.Stat("/usr/sbin/" + tool.cmd); err != nil {
				apt = append(apt, tool.pkg)
			}
		}
	}
	if len(apt) > 0 {
		if !o.install {
			return nil, fmt.Errorf("missing Debian packages: %s", strings.Join(apt, " "))
		}
		fmt.Fprintln(os.Stderr, "installing:", strings.Join(apt, " "))
		if err := runCmd(ctx, "apt-get", "update", "-qq"); err != nil {
			return nil, err
		}
		args := append([]string{"install", "-y", "-qq"}, apt...)
		if err := runCmdEnv(ctx, []string{"DEBIAN_FRONTEND=noninteractive"}, "apt-get", args...); err != nil {
			return nil, err
		}
	}

	e.registry = filepath.Join(e.gobin, "registry")
	if _, err := os.Stat(e.registry); err != nil {
		if !o.install {
			return nil, fmt.Errorf("missing %s (go install %s)", e.registry, distributionModule)
		}
		fmt.Fprintln(os.Stderr, "installing:", distributionModule)
		if err := runCmdEnv(ctx, []string{"CGO_ENABLED=0"}, "go", "install", distributionModule); err != nil {
			return nil, err
		}
	}

	e.signet = o.signet
	if e.signet == "" {
		e.signet = filepath.Join(o.workDir, "signet")
		fmt.Fprintln(os.Stderr, "building signet")
		if err := runCmdEnv(ctx, []string{"CGO_ENABLED=0"}, "go", "build", "-tags", "containers_image_openpgp", "-trimpath", "-o", e.signet, "./cmd/signet"); err != nil {
			return nil, err
		}
	}
	e.machine = describeMachine(ctx)
	return e, nil
}

func describeMachine(ctx context.Context) string {
	var b strings.Builder
	model := ""
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	mem := ""
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		if line, _, ok := bytes.Cut(data, []byte("\n")); ok {
			mem = strings.Join(strings.Fields(string(line))[1:], " ")
		}
	}
	fmt.Fprintf(&b, "- CPU: %d x %s\n", runtime.NumCPU(), model)
	fmt.Fprintf(&b, "- memory: %s\n", mem)
	if v, err := output(ctx, "uname", "-sr"); err == nil {
		fmt.Fprintf(&b, "- kernel: %s\n", strings.TrimSpace(v))
	}
	if v, err := output(ctx, "go", "version"); err == nil {
		fmt.Fprintf(&b, "- %s\n", strings.TrimSpace(v))
	}
	for _, c := range [][]string{{"nginx", "-v"}, {"wrk", "-v"}} {
		if v, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); len(v) > 0 {
			_ = err // wrk -v exits 1
			line, _, _ := strings.Cut(strings.TrimSpace(string(v)), "\n")
			fmt.Fprintf(&b, "- %s\n", line)
		}
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Fprintf(&b, "- load average at start: %s\n", strings.Join(strings.Fields(string(data))[:3], " "))
	}
	return b.String()
}

func output(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return string(out), err
}

func runCmd(ctx context.Context, name string, args ...string) error {
	return runCmdEnv(ctx, nil, name, args...)
}

func runCmdEnv(ctx context.Context, extra []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), extra...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w", name, strings.Join(args, " "), err)
	}
	return nil
}
