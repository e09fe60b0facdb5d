package main

import (
	"bytes"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/signet-registry/signet/config"
)

func runCLI(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	cmd := NewRootCmd(func(k string) string { return env[k] })
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestPrintConfigPrecedence(t *testing.T) {
	out, err := runCLI(t, map[string]string{
		"SIGNET_SERVER_ADDR":            "127.0.0.1:7777",
		"SIGNET_STORAGE_DATADIR":        "/from/env",
		"SIGNET_SIGNATURES_MAXPERIMAGE": "8",
	}, "serve", "--print-config", "--data-dir", "/from/flag")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	var cfg config.Config
	if err := yaml.Unmarshal([]byte(out), &cfg); err != nil {
		t.Fatalf("printed config is not YAML: %v\n%s", err, out)
	}
	if cfg.Server.Addr != "127.0.0.1:7777" {
		t.Errorf("env addr not applied: %q", cfg.Server.Addr)
	}
	if cfg.Storage.DataDir != "/from/flag" {
		t.Errorf("flag did not override env: %q", cfg.Storage.DataDir)
	}
	if cfg.Signatures.MaxPerImage != 8 {
		t.Errorf("env limit not applied: %d", cfg.Signatures.MaxPerImage)
	}
}

func TestPrintConfigDefaults(t *testing.T) {
	out, err := runCLI(t, nil, "serve", "--print-config")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"addr: 127.0.0.1:5000", "dataDir: ./signet-data", "maxBodyBytes: 4194304"} {
		if !strings.Contains(out, want) {
			t.Errorf("defaults lack %q:\n%s", want, out)
		}
	}
}

func TestServeRejectsBadConfig(t *testing.T) {
	if _, err := runCLI(t, map[string]string{"SIGNET_LOG_LEVEL": "chatty"}, "serve", "--print-config"); err == nil {
		t.Fatal("bad log level accepted")
	}
	if _, err := runCLI(t, nil, "serve", "--config", "/nonexistent/signet.yaml"); err == nil {
		t.Fatal("missing config file accepted")
	}
	if _, err := runCLI(t, nil, "serve", "extra-arg"); err == nil {
		t.Fatal("positional argument accepted")
	}
}
