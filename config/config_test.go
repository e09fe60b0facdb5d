package config

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

func noEnv(string) string { return "" }

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "signet.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaultsWithoutFile(t *testing.T) {
	cfg, err := Load("", noEnv)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:5000" || cfg.Storage.DataDir != "./signet-data" {
		t.Fatalf("defaults %+v", cfg)
	}
	if got := cfg.Signatures.MaxEncodedListBytes(); got > ClientListLimit {
		t.Fatalf("default limits allow a %d byte list", got)
	}
}

func TestPrecedence(t *testing.T) {
	p := writeFile(t, "version: 1\nserver:\n  addr: 127.0.0.1:6000\n  shutdownTimeout: 5s\nstorage:\n  dataDir: /tmp/x\n")
	cfg, err := Load(p, env(map[string]string{"SIGNET_STORAGE_DATADIR": "/tmp/y", "SIGNET_SIGNATURES_MAXPERIMAGE": "16", "SIGNET_LOG_ACCESSLOG": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Addr != "127.0.0.1:6000" {
		t.Errorf("file did not set addr: %q", cfg.Server.Addr)
	}
	if cfg.Server.ShutdownTimeout != 5*time.Second {
		t.Errorf("file did not set duration: %v", cfg.Server.ShutdownTimeout)
	}
	if cfg.Storage.DataDir != "/tmp/y" {
		t.Errorf("env did not override file: %q", cfg.Storage.DataDir)
	}
	if cfg.Signatures.MaxPerImage != 16 || cfg.Log.AccessLog {
		t.Errorf("env overrides not applied: %+v %+v", cfg.Signatures, cfg.Log)
	}
	if cfg.Log.Level != "info" {
		t.Errorf("default lost: %q", cfg.Log.Level)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want string
	}{
		{"unknown key", "version: 1\nserver:\n  adr: x\n", nil, "adr"},
		{"wrong version", "version: 2\n", nil, "version"},
		{"bad yaml", "server: [\n", nil, "parse config"},
		{"bad env int", "", map[string]string{"SIGNET_SIGNATURES_MAXPERIMAGE": "many"}, "SIGNET_SIGNATURES_MAXPERIMAGE"},
		{"bad env duration", "", map[string]string{"SIGNET_SERVER_SHUTDOWNTIMEOUT": "soon"}, "SIGNET_SERVER_SHUTDOWNTIMEOUT"},
		{"body over client limit", "", map[string]string{"SIGNET_SIGNATURES_MAXBODYBYTES": "5000000"}, "maxBodyBytes"},
		{"list over client limit", "", map[string]string{"SIGNET_SIGNATURES_MAXBYTESPERIMAGE": "4194304"}, "clients accept"},
		{"bad level", "", map[string]string{"SIGNET_LOG_LEVEL": "loud"}, "log.level"},
		{"cert without key", "", map[string]string{"SIGNET_SERVER_TLSCERTFILE": "/x.crt"}, "go together"},
		{"no in-flight", "", map[string]string{"SIGNET_SERVER_MAXINFLIGHT": "0"}, "maxInFlight"},
		{"empty addr", "version: 1\nserver:\n  addr: \"\"\n", nil, "server.addr"},
		{"external pattern uppercase", "version: 1\nsignatures:\n  externalRepositories: [\"Docker.io/**\"]\n", nil, "externalRepositories"},
		{"external pattern empty component", "", map[string]string{"SIGNET_SIGNATURES_EXTERNALREPOSITORIES": "docker.io//x"}, "externalRepositories"},
		{"external not a list", "version: 1\nsignatures:\n  externalRepositories: docker.io/**\n", nil, "parse config"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ""
			if tt.file != "" {
				p = writeFile(t, tt.file)
			}
			_, err := Load(p, env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want mention of %q", err, tt.want)
			}
		})
	}
}

func TestMissingFile(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "nope.yaml"), noEnv); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestYAMLRoundTrip(t *testing.T) {
	cfg := Default()
	cfg.Server.Addr = "127.0.0.1:7000"
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	back, err := Load(writeFile(t, string(out)), noEnv)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if !reflect.DeepEqual(back, cfg) {
		t.Fatalf("round trip changed config:\n%+v\n%+v", back, cfg)
	}
}

func TestEveryFieldHasEnvOverride(t *testing.T) {
	// Setting every documented variable to a junk value must produce an
	// error naming it, proving each field is reachable from the
	// environment.
	for _, name := range []string{"SIGNET_SERVER_ADDR", "SIGNET_STORAGE_DATADIR", "SIGNET_LOG_FORMAT"} {
		cfg, err := Load("", env(map[string]string{name: "zz"}))
		if name == "SIGNET_LOG_FORMAT" {
			if err == nil {
				t.Errorf("%s=zz accepted", name)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if cfg.Server.Addr != "zz" && cfg.Storage.DataDir != "zz" {
			t.Errorf("%s not applied", name)
		}
	}
}

func TestExternalRepositories(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want []string
	}{
		{"default", "", nil, []string{}},
		{"file", "version: 1\nsignatures:\n  externalRepositories:\n    - docker.io/library/**\n    - registry.example.com:5000/**\n", nil,
			[]string{"docker.io/library/**", "registry.example.com:5000/**"}},
		{"env list", "", map[string]string{"SIGNET_SIGNATURES_EXTERNALREPOSITORIES": "docker.io/library/**, quay.io/**,"},
			[]string{"docker.io/library/**", "quay.io/**"}},
		{"env overrides file", "version: 1\nsignatures:\n  externalRepositories: [a/**]\n", map[string]string{"SIGNET_SIGNATURES_EXTERNALREPOSITORIES": "b/**"},
			[]string{"b/**"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := ""
			if tt.file != "" {
				p = writeFile(t, tt.file)
			}
			cfg, err := Load(p, env(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(cfg.Signatures.ExternalRepositories, tt.want) {
				t.Fatalf("externalRepositories %q, want %q", cfg.Signatures.ExternalRepositories, tt.want)
			}
		})
	}
}

func TestUpstream(t *testing.T) {
	file := "version: 1\nregistry:\n  upstream:\n    url: https://registry.internal:5000\n    auth: passthrough\n    cacheTTL: 10s\n"
	cfg, err := Load(writeFile(t, file), env(map[string]string{
		"SIGNET_REGISTRY_UPSTREAM_SWEEPINTERVAL":      "5m",
		"SIGNET_REGISTRY_UPSTREAM_USERNAME":           "signet",
		"SIGNET_REGISTRY_UPSTREAM_PASSWORDFILE":       "/run/secrets/upstream",
		"SIGNET_REGISTRY_UPSTREAM_INSECURESKIPVERIFY": "true",
	}))
	if err != nil {
		t.Fatal(err)
	}
	u := cfg.Registry.Upstream
	if u.URL != "https://registry.internal:5000" || u.Auth != UpstreamAuthPassthrough || u.CacheTTL != 10*time.Second {
		t.Errorf("file not applied: %+v", u)
	}
	if u.SweepInterval != 5*time.Minute || u.Username != "signet" || u.PasswordFile != "/run/secrets/upstream" || !u.InsecureSkipVerify {
		t.Errorf("environment not applied: %+v", u)
	}
	if u.ConnectTimeout != Default().Registry.Upstream.ConnectTimeout {
		t.Errorf("default lost: %+v", u)
	}
	if d := Default().Registry.Upstream; d.URL != "" || d.Auth != UpstreamAuthSignet {
		t.Errorf("default is not the embedded registry with signet auth: %+v", d)
	}
}

func TestUpstreamErrors(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"ftp", map[string]string{"SIGNET_REGISTRY_UPSTREAM_URL": "ftp://x"}, "scheme"},
		{"path", map[string]string{"SIGNET_REGISTRY_UPSTREAM_URL": "http://x/v2"}, "no path"},
		{"user info", map[string]string{"SIGNET_REGISTRY_UPSTREAM_URL": "https://u:p@x"}, "credentials"},
		{"no host", map[string]string{"SIGNET_REGISTRY_UPSTREAM_URL": "http://"}, "no host"},
		{"auth mode", map[string]string{"SIGNET_REGISTRY_UPSTREAM_AUTH": "token"}, "registry.upstream.auth"},
		{"user alone", map[string]string{"SIGNET_REGISTRY_UPSTREAM_USERNAME": "u"}, "go together"},
		{"zero timeout", map[string]string{"SIGNET_REGISTRY_UPSTREAM_CHECKTIMEOUT": "0s"}, "must be positive"},
		{"fast sweep", map[string]string{"SIGNET_REGISTRY_UPSTREAM_SWEEPINTERVAL": "10ms"}, "sweepInterval"},
		{"no entries", map[string]string{"SIGNET_REGISTRY_UPSTREAM_CACHEENTRIES": "0"}, "cacheEntries"},
		{"bad duration", map[string]string{"SIGNET_REGISTRY_UPSTREAM_CACHETTL": "soon"}, "SIGNET_REGISTRY_UPSTREAM_CACHETTL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load("", env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want mention of %q", err, tt.want)
			}
		})
	}
}
