// Package config owns Signet's configuration: one versioned YAML document,
// its defaults, and environment overrides.
//
// Precedence, lowest first: built-in defaults, the YAML file, SIGNET_*
// environment variables, then command-line flags (applied by cmd/signet).
// Load never panics and rejects unknown keys, so a typo in a config file is
// an error rather than a silently ignored setting.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/signet-registry/signet/internal/repoglob"
)

// Version is the only configuration schema version this build reads.
const Version = 1

// MiB is 1<<20 bytes.
const MiB = 1 << 20

// ClientListLimit is the size containers/image accepts for a whole
// signature list response (and for one signature): 4 MiB.
const ClientListLimit = 4 * MiB

// Config is the whole configuration document.
type Config struct {
	// Version of the schema; must be 1.
	Version int `yaml:"version"`
	// Server is the HTTP listener.
	Server Server `yaml:"server"`
	// Storage says where data lives.
	Storage Storage `yaml:"storage"`
	// Signatures bounds the signature extension API.
	Signatures Signatures `yaml:"signatures"`
	// Log configures the process log and the access log.
	Log Log `yaml:"log"`
	// Auth configures who may do what.
	Auth Auth `yaml:"auth"`
}

// Auth configures authentication and authorization.
type Auth struct {
	// UsersFile is the users, tokens and grants file. Empty means no
	// access control: Signet then serves anonymously, and only on a
	// loopback address unless AllowAnonymous is set.
	UsersFile string `yaml:"usersFile"`
	// AllowAnonymous permits serving without a users file on a
	// non-loopback address (--insecure-allow-anonymous).
	AllowAnonymous bool `yaml:"allowAnonymous"`
	// ReloadInterval is how often the users file is checked for changes;
	// SIGHUP reloads at once.
	ReloadInterval time.Duration `yaml:"reloadInterval"`
}

// Server configures the HTTP listener.
type Server struct {
	// Addr is HOST:PORT to listen on. Default 127.0.0.1:5000.
	Addr string `yaml:"addr"`
	// ShutdownTimeout bounds how long in-flight requests may take to
	// drain on SIGTERM/SIGINT before connections are closed.
	ShutdownTimeout time.Duration `yaml:"shutdownTimeout"`
	// ReadHeaderTimeout bounds how long a client may take to send
	// request headers (slowloris protection).
	ReadHeaderTimeout time.Duration `yaml:"readHeaderTimeout"`
	// IdleTimeout closes idle keep-alive connections.
	IdleTimeout time.Duration `yaml:"idleTimeout"`
	// MaxHeaderBytes bounds request header size.
	MaxHeaderBytes int `yaml:"maxHeaderBytes"`
	// ReadTimeout bounds reading a whole request, body included; large
	// layer uploads over slow links need it generous.
	ReadTimeout time.Duration `yaml:"readTimeout"`
	// WriteTimeout bounds writing a whole response.
	WriteTimeout time.Duration `yaml:"writeTimeout"`
	// MaxInFlight bounds requests handled at once; past it Signet
	// answers 429 with Retry-After. Health checks are exempt.
	MaxInFlight int `yaml:"maxInFlight"`
	// MaxUploadBytes bounds one request body on /v2/ (a blob upload
	// chunk or a monolithic upload).
	MaxUploadBytes int64 `yaml:"maxUploadBytes"`
	// TLSCertFile and TLSKeyFile enable HTTPS (TLS 1.2 or later). The
	// pair is reloaded when the files change.
	TLSCertFile string `yaml:"tlsCertFile"`
	TLSKeyFile  string `yaml:"tlsKeyFile"`
}

// Storage configures where blobs, manifests and signatures live.
type Storage struct {
	// DataDir holds the registry's blob store (DataDir/registry) and
	// the signature database (DataDir/signatures.db). Default
	// ./signet-data.
	DataDir string `yaml:"dataDir"`
}

// Signatures bounds the signature extension API.
type Signatures struct {
	// MaxBodyBytes caps one PUT body. At most 4 MiB, the client limit.
	MaxBodyBytes int64 `yaml:"maxBodyBytes"`
	// MaxPerImage caps how many signatures one image may hold.
	MaxPerImage int `yaml:"maxPerImage"`
	// MaxBytesPerImage caps the summed raw content of one image's
	// signatures. Together with MaxPerImage it must keep the encoded
	// GET list within 4 MiB.
	MaxBytesPerImage int64 `yaml:"maxBytesPerImage"`
	// ExternalRepositories are globs (as in the users file: *, ** and ?)
	// over repository names whose images Signet does not host, for
	// example "docker.io/library/**". For a matching repository the
	// extension API, the Signet API and /sigstore/ store and serve
	// signatures without requiring the manifest: Signet is then a
	// signature server for images held elsewhere. In the environment,
	// SIGNET_SIGNATURES_EXTERNALREPOSITORIES takes a comma-separated list.
	ExternalRepositories []string `yaml:"externalRepositories"`
}

// Log configures logging.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
	// AccessLog turns the per-request access log on or off.
	AccessLog bool `yaml:"accessLog"`
}

// Default returns the configuration Signet runs with when no file and no
// environment variables are given.
func Default() Config {
	return Config{
		Version: Version,
		Server: Server{
			Addr:              "127.0.0.1:5000",
			ShutdownTimeout:   30 * time.Second,
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       120 * time.Second,
			MaxHeaderBytes:    64 << 10,
			ReadTimeout:       15 * time.Minute,
			WriteTimeout:      15 * time.Minute,
			MaxInFlight:       1024,
			MaxUploadBytes:    10 << 30,
		},
		Storage: Storage{DataDir: "./signet-data"},
		Signatures: Signatures{
			MaxBodyBytes:     ClientListLimit,
			MaxPerImage:      64,
			MaxBytesPerImage: 3*MiB - 64<<10,
			// Empty rather than nil, so --print-config shows the key.
			ExternalRepositories: []string{},
		},
		Log:  Log{Level: "info", Format: "text", AccessLog: true},
		Auth: Auth{ReloadInterval: 2 * time.Second},
	}
}

// EncodedEntryOverhead bounds the bytes one signature adds to a GET list
// beyond its base64 content: the JSON keys, the 64+1+32 character name,
// the type and punctuation.
const EncodedEntryOverhead = 256

// MaxEncodedListBytes bounds the size of one image's GET response under
// these limits.
func (s Signatures) MaxEncodedListBytes() int64 {
	b64 := (s.MaxBytesPerImage + 2) / 3 * 4
	// Each signature is padded to a multiple of 4 on its own.
	return b64 + int64(s.MaxPerImage)*(EncodedEntryOverhead+4) + int64(len(`{"signatures":[]}`))
}

// Validate checks that the configuration is usable.
func (c Config) Validate() error {
	var errs []error
	if c.Version != Version {
		errs = append(errs, fmt.Errorf("version: got %d, this build reads version %d", c.Version, Version))
	}
	if c.Server.Addr == "" {
		errs = append(errs, errors.New("server.addr: must not be empty"))
	}
	if c.Server.ShutdownTimeout < 0 || c.Server.ReadHeaderTimeout <= 0 || c.Server.IdleTimeout < 0 {
		errs = append(errs, errors.New("server: timeouts must not be negative, readHeaderTimeout must be positive"))
	}
	if c.Server.ReadTimeout < 0 || c.Server.WriteTimeout < 0 {
		errs = append(errs, errors.New("server: read and write timeouts must not be negative"))
	}
	if c.Server.MaxInFlight < 1 {
		errs = append(errs, errors.New("server.maxInFlight: must be at least 1"))
	}
	if c.Server.MaxUploadBytes < 1<<20 {
		errs = append(errs, errors.New("server.maxUploadBytes: must be at least 1 MiB"))
	}
	if (c.Server.TLSCertFile == "") != (c.Server.TLSKeyFile == "") {
		errs = append(errs, errors.New("server: tlsCertFile and tlsKeyFile go together"))
	}
	if c.Auth.ReloadInterval <= 0 {
		errs = append(errs, errors.New("auth.reloadInterval: must be positive"))
	}
	if c.Server.MaxHeaderBytes < 4096 {
		errs = append(errs, errors.New("server.maxHeaderBytes: must be at least 4096"))
	}
	if c.Storage.DataDir == "" {
		errs = append(errs, errors.New("storage.dataDir: must not be empty"))
	}
	s := c.Signatures
	if s.MaxBodyBytes < 1024 || s.MaxBodyBytes > ClientListLimit {
		errs = append(errs, fmt.Errorf("signatures.maxBodyBytes: must be between 1024 and %d", ClientListLimit))
	}
	if s.MaxPerImage < 1 || s.MaxPerImage > 1024 {
		errs = append(errs, errors.New("signatures.maxPerImage: must be between 1 and 1024"))
	}
	if s.MaxBytesPerImage < 1024 {
		errs = append(errs, errors.New("signatures.maxBytesPerImage: must be at least 1024"))
	} else if s.MaxEncodedListBytes() > ClientListLimit {
		errs = append(errs, fmt.Errorf("signatures: maxPerImage %d and maxBytesPerImage %d allow a GET list of %d bytes, over the %d bytes clients accept",
			s.MaxPerImage, s.MaxBytesPerImage, s.MaxEncodedListBytes(), ClientListLimit))
	}
	if _, err := repoglob.CompileSet(s.ExternalRepositories); err != nil {
		errs = append(errs, fmt.Errorf("signatures.externalRepositories: %w", err))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not debug, info, warn or error", c.Log.Level))
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not text or json", c.Log.Format))
	}
	return errors.Join(errs...)
}

// maxFileBytes bounds the configuration file we are willing to read.
const maxFileBytes = 1 * MiB

// Load builds the effective configuration: defaults, then the file at path
// (skipped when path is empty), then the environment as given by getenv
// (os.Getenv in production). It validates the result.
func Load(path string, getenv func(string) string) (Config, error) {
	cfg := Default()
	if path != "" {
		if err := mergeFile(&cfg, path); err != nil {
			return Config{}, err
		}
	}
	if getenv != nil {
		if err := applyEnv(&cfg, getenv); err != nil {
			return Config{}, err
		}
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: %w", err)
	}
	return cfg, nil
}

func mergeFile(cfg *Config, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open config: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return fmt.Errorf("read config %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return fmt.Errorf("config %s: larger than %d bytes", path, maxFileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("parse config %s: %w", path, err)
	}
	return nil
}

// EnvName is the environment variable that overrides section.field, for
// example EnvName("server", "addr") == "SIGNET_SERVER_ADDR".
func EnvName(section, field string) string {
	return "SIGNET_" + strings.ToUpper(section) + "_" + strings.ToUpper(field)
}

// applyEnv walks the two-level struct and applies SIGNET_SECTION_FIELD
// overrides, using the YAML key names.
func applyEnv(cfg *Config, getenv func(string) string) error {
	root := reflect.ValueOf(cfg).Elem()
	var errs []error
	for i := 0; i < root.NumField(); i++ {
		sf := root.Type().Field(i)
		section := yamlName(sf)
		sv := root.Field(i)
		if sv.Kind() != reflect.Struct {
			continue
		}
		for j := 0; j < sv.NumField(); j++ {
			ff := sv.Type().Field(j)
			name := EnvName(section, yamlName(ff))
			val := getenv(name)
			if val == "" {
				continue
			}
			if err := setScalar(sv.Field(j), val); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	return errors.Join(errs...)
}

func yamlName(f reflect.StructField) string {
	tag := f.Tag.Get("yaml")
	if name, _, _ := strings.Cut(tag, ","); name != "" {
		return name
	}
	return f.Name
}

func setScalar(v reflect.Value, s string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("parse duration: %w", err)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("parse bool: %w", err)
		}
		v.SetBool(b)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported kind %s", v.Kind())
		}
		// A list is comma-separated; empty items are dropped, so "a,"
		// is one pattern.
		var items []string
		for _, item := range strings.Split(s, ",") {
			if item = strings.TrimSpace(item); item != "" {
				items = append(items, item)
			}
		}
		v.Set(reflect.ValueOf(items))
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("parse integer: %w", err)
		}
		v.SetInt(n)
	default:
		return fmt.Errorf("unsupported kind %s", v.Kind())
	}
	return nil
}

// YAML renders the configuration as the YAML document it could be loaded
// from.
func (c Config) YAML() ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("encode config: %w", err)
	}
	return buf.Bytes(), nil
}
