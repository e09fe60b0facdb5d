package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc is a server started for one measurement.
type proc struct {
	name string
	cmd  *exec.Cmd
	addr string
	log  *os.File
	done chan error
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startPinned starts name with args on core, logs to dir/<label>.log, and
// waits until readyURL answers 200 (or, with an empty readyURL, until addr
// accepts connections).
func startPinned(ctx context.Context, dir, label, core, addr, readyURL string, extraEnv []string, name string, args ...string) (*proc, error) {
	logf, err := os.Create(filepath.Join(dir, label+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", append([]string{"-c", core, name}, args...)...)
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", label, err)
	}
	p := &proc{name: label, cmd: cmd, addr: addr, log: logf, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	if err := p.waitReady(ctx, readyURL, 30*time.Second); err != nil {
		p.stop()
		return nil, err
	}
	return p, nil
}

func (p *proc) waitReady(ctx context.Context, readyURL string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	c := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.done <- err
			log, _ := os.ReadFile(p.log.Name())
			return fmt.Errorf("%s exited before it was ready: %v\n%s", p.name, err, tail(log, 2000))
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if readyURL == "" {
			if conn, err := net.DialTimeout("tcp", p.addr, time.Second); err == nil {
				conn.Close()
				return nil
			}
		} else if resp, err := c.Get(readyURL); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready after %s", p.name, limit)
}

// statusKiB reads a kB field of the server's /proc status: VmHWM (peak
// resident set), RssAnon (its anonymous part; the rest is the page cache
// of the mmapped database). The process is taskset's child after exec,
// so cmd.Process is the server itself.
func (p *proc) statusKiB(field string) (int64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/status")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, errors.New("no " + field + " in /proc status")
}

func (p *proc) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.log.Close()
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
