package config

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestStorageBackends(t *testing.T) {
	d := Default().Storage
	if d.Backend != BackendBolt || d.Registry.Driver != DriverFilesystem || d.Etcd.Prefix != "/signet/" {
		t.Fatalf("defaults: %+v", d)
	}
	file := `version: 1
storage:
  backend: etcd
  etcd:
    endpoints: [https://etcd-1:2379]
    caFile: /etc/signet/etcd-ca.pem
    dialTimeout: 2s
  registry:
    driver: s3
    parameters:
      bucket: signet
      regionendpoint: http://127.0.0.1:9000
      forcepathstyle: true
      chunksize: 10485760
`
	cfg, err := Load(writeFile(t, file), env(map[string]string{
		"SIGNET_STORAGE_ETCD_ENDPOINTS":      "https://etcd-1:2379, https://etcd-2:2379",
		"SIGNET_STORAGE_ETCD_PREFIX":         "/prod/",
		"SIGNET_STORAGE_ETCD_USERNAME":       "signet",
		"SIGNET_STORAGE_ETCD_PASSWORDFILE":   "/run/secrets/etcd",
		"SIGNET_STORAGE_ETCD_REQUESTTIMEOUT": "3s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	e := cfg.Storage.Etcd
	if !slices.Equal(e.Endpoints, []string{"https://etcd-1:2379", "https://etcd-2:2379"}) || e.Prefix != "/prod/" ||
		e.Username != "signet" || e.PasswordFile != "/run/secrets/etcd" || e.RequestTimeout != 3*time.Second {
		t.Errorf("environment not applied: %+v", e)
	}
	if e.CAFile != "/etc/signet/etcd-ca.pem" || e.DialTimeout != 2*time.Second {
		t.Errorf("file not applied: %+v", e)
	}
	p := cfg.Storage.Registry.Parameters
	if cfg.Storage.Registry.Driver != DriverS3 || p["bucket"] != "signet" || p["forcepathstyle"] != true || p["chunksize"] != 10485760 {
		t.Errorf("driver parameters not passed through as written: %#v", p)
	}
	// --print-config output loads back to the same thing.
	out, err := cfg.YAML()
	if err != nil {
		t.Fatal(err)
	}
	again, err := Load(writeFile(t, string(out)), nil)
	if err != nil {
		t.Fatalf("printed config does not load: %v\n%s", err, out)
	}
	if !slices.Equal(again.Storage.Etcd.Endpoints, e.Endpoints) || again.Storage.Registry.Parameters["regionendpoint"] != "http://127.0.0.1:9000" {
		t.Errorf("round trip lost storage settings: %+v", again.Storage)
	}
}

func TestStorageErrors(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  map[string]string
		want string
	}{
		{"backend", "", map[string]string{"SIGNET_STORAGE_BACKEND": "redis"}, "storage.backend"},
		{"no endpoints", "", map[string]string{"SIGNET_STORAGE_BACKEND": "etcd"}, "at least one endpoint"},
		{"endpoint scheme", "", map[string]string{"SIGNET_STORAGE_BACKEND": "etcd", "SIGNET_STORAGE_ETCD_ENDPOINTS": "etcd-1:2379"}, "not an http"},
		{"prefix slash", "", map[string]string{"SIGNET_STORAGE_ETCD_PREFIX": "/signet"}, "storage.etcd.prefix"},
		{"prefix space", "", map[string]string{"SIGNET_STORAGE_ETCD_PREFIX": "/my signet/"}, "storage.etcd.prefix"},
		{"cert alone", "", map[string]string{"SIGNET_STORAGE_BACKEND": "etcd", "SIGNET_STORAGE_ETCD_ENDPOINTS": "https://e:2379", "SIGNET_STORAGE_ETCD_CERTFILE": "c.pem"}, "certFile and keyFile"},
		{"user alone", "", map[string]string{"SIGNET_STORAGE_BACKEND": "etcd", "SIGNET_STORAGE_ETCD_ENDPOINTS": "https://e:2379", "SIGNET_STORAGE_ETCD_USERNAME": "u"}, "username and passwordFile"},
		{"timeout", "", map[string]string{"SIGNET_STORAGE_ETCD_REQUESTTIMEOUT": "0s"}, "must be positive"},
		{"driver", "", map[string]string{"SIGNET_STORAGE_REGISTRY_DRIVER": "azure"}, "storage.registry.driver"},
		{"s3 bucket", "", map[string]string{"SIGNET_STORAGE_REGISTRY_DRIVER": "s3"}, "needs a bucket"},
		{"filesystem parameters", "version: 1\nstorage:\n  registry:\n    parameters:\n      rootdirectory: /elsewhere\n", nil, "takes none"},
		{"parameters from env", "", map[string]string{"SIGNET_STORAGE_REGISTRY_PARAMETERS": "bucket=x"}, "SIGNET_STORAGE_REGISTRY_PARAMETERS"},
		{"unknown key", "version: 1\nstorage:\n  etcd:\n    endpoint: http://e:2379\n", nil, "endpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := ""
			if tt.file != "" {
				path = writeFile(t, tt.file)
			}
			_, err := Load(path, env(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want mention of %q", err, tt.want)
			}
		})
	}
}
