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
	"net/url"
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
	// Registry configures where /v2/ is served from.
	Registry Registry `yaml:"registry"`
}

// Registry configures the /v2/ registry: the embedded one, or an existing
// registry Signet fronts.
type Registry struct {
	// Upstream, once its URL is set, makes Signet a proxy in front of
	// that registry instead of serving the embedded one (proxy mode).
	// Its fields are overridden by SIGNET_REGISTRY_UPSTREAM_<FIELD>.
	Upstream Upstream `yaml:"upstream"`
}

// Upstream auth modes.
const (
	UpstreamAuthSignet      = "signet"
	UpstreamAuthPassthrough = "passthrough"
)

// Upstream configures proxy mode.
type Upstream struct {
	// URL of the registry to front: http:// or https://, host and port,
	// no path. Empty: the embedded registry (serve --upstream sets it).
	URL string `yaml:"url"`
	// Auth is "signet" (Signet's users file decides every request and
	// Signet talks to the upstream with the service credentials below)
	// or "passthrough" (each client's Authorization goes upstream
	// unchanged and the upstream decides; signature writes need a push
	// grant upstream, reads a pull grant).
	Auth string `yaml:"auth"`
	// CAFile adds PEM CA certificates for the upstream's TLS certificate
	// to the system roots.
	CAFile string `yaml:"caFile"`
	// InsecureSkipVerify turns off TLS verification of the upstream
	// (testing only).
	InsecureSkipVerify bool `yaml:"insecureSkipVerify"`
	// Username and PasswordFile are the service credentials: Basic, or
	// exchanged for Bearer tokens when the upstream uses a token
	// service. Used for every forwarded request in signet mode, and in
	// both modes for the existence sweep. Empty: anonymous.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
	// ConnectTimeout bounds dialing the upstream and the TLS handshake.
	ConnectTimeout time.Duration `yaml:"connectTimeout"`
	// ResponseHeaderTimeout bounds the wait for the upstream's response
	// headers after a request is sent. Bodies have no time limit.
	ResponseHeaderTimeout time.Duration `yaml:"responseHeaderTimeout"`
	// CheckTimeout bounds each of Signet's own requests to the upstream
	// (existence and permission checks, readiness).
	CheckTimeout time.Duration `yaml:"checkTimeout"`
	// CacheTTL is how long manifest existence answers, passthrough pull
	// grants and cached manifests are kept. 0 caches nothing.
	CacheTTL time.Duration `yaml:"cacheTTL"`
	// CacheEntries bounds the existence and pull-grant caches, each.
	CacheEntries int `yaml:"cacheEntries"`
	// ManifestCacheBytes bounds the cache of manifests by digest; 0
	// turns it off.
	ManifestCacheBytes int64 `yaml:"manifestCacheBytes"`
	// SweepInterval is how often a page of signed images is re-checked
	// upstream, to hide the signatures of manifests deleted there; 0
	// turns the sweep off.
	SweepInterval time.Duration `yaml:"sweepInterval"`
	// SweepBatch is how many images one sweep tick checks at most.
	SweepBatch int `yaml:"sweepBatch"`
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
	// HeapFloorMiB keeps the garbage collector's heap goal at least this
	// large, so a server with a small live heap does not collect many
	// times a second under load (internal/gctune). 0 turns it off; a
	// GOGC environment variable also does, leaving the runtime to it.
	HeapFloorMiB int `yaml:"heapFloorMiB"`
	// HeapHeadroomMiB bounds how far the heap may grow past its live
	// data before a collection (never below a quarter of the live heap),
	// so a large live heap does not double the resident set. 0 leaves
	// it to the runtime (the live heap again). Like HeapFloorMiB, off
	// when GOGC is set.
	HeapHeadroomMiB int `yaml:"heapHeadroomMiB"`
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
	// Backend keeps signatures, their verification status, the
	// manifest-delete journal and the referrers index: "bbolt" (one
	// file, DataDir/signatures.db, one server) or "etcd" (shared by
	// several replicas; see Etcd).
	Backend string `yaml:"backend"`
	// Etcd configures the etcd backend.
	Etcd Etcd `yaml:"etcd"`
	// Registry chooses distribution's storage driver for blobs and
	// manifests.
	Registry RegistryStorage `yaml:"registry"`
}

// Storage backends.
const (
	BackendBolt = "bbolt"
	BackendEtcd = "etcd"
)

// Etcd configures the etcd signature backend. Its fields are overridden by
// SIGNET_STORAGE_ETCD_<FIELD>; endpoints take a comma-separated list.
type Etcd struct {
	// Endpoints are the etcd client URLs, e.g. https://etcd-1:2379.
	Endpoints []string `yaml:"endpoints"`
	// Prefix is put before every key, so that several installations
	// can share one etcd: it must end in "/", and two installations'
	// prefixes must not nest.
	Prefix string `yaml:"prefix"`
	// CAFile verifies etcd's TLS certificate (PEM); with it, or with
	// certFile, Signet connects with TLS.
	CAFile string `yaml:"caFile"`
	// CertFile and KeyFile are a TLS client certificate (PEM).
	CertFile string `yaml:"certFile"`
	KeyFile  string `yaml:"keyFile"`
	// Username and PasswordFile authenticate with etcd's own users
	// (etcdctl user add); the file holds the password.
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"passwordFile"`
	// DialTimeout bounds connecting to etcd.
	DialTimeout time.Duration `yaml:"dialTimeout"`
	// RequestTimeout bounds every store operation; past it the request
	// is answered 503 UNAVAILABLE.
	RequestTimeout time.Duration `yaml:"requestTimeout"`
}

// Storage drivers for blobs and manifests.
const (
	DriverFilesystem = "filesystem"
	DriverS3         = "s3"
)

// RegistryStorage passes a storage driver configuration through to the
// embedded distribution registry.
type RegistryStorage struct {
	// Driver is "filesystem" (DataDir/registry, the default) or "s3"
	// (S3 and S3-compatible object stores: distribution's s3-aws
	// driver).
	Driver string `yaml:"driver"`
	// Parameters go to the driver unchanged, with distribution's names
	// (for s3: bucket, region, regionendpoint, forcepathstyle, secure,
	// rootdirectory, accesskey, secretkey, chunksize, …). The
	// filesystem driver takes none. Not settable from the environment;
	// S3 credentials can come from AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY instead of accesskey and secretkey.
	Parameters map[string]any `yaml:"parameters"`
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
	// ListCacheMiB bounds the memory of encoded signature lists kept
	// for GETs (what the cache accounts: the encoded response and where
	// each content lies in it). More holds more images' lists: a GET
	// that misses reads the store and encodes again.
	ListCacheMiB int `yaml:"listCacheMiB"`
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
			HeapFloorMiB:      64,
			HeapHeadroomMiB:   24,
		},
		Storage: Storage{
			DataDir: "./signet-data",
			Backend: BackendBolt,
			Etcd: Etcd{
				// Empty rather than nil, so --print-config shows the key.
				Endpoints:      []string{},
				Prefix:         "/signet/",
				DialTimeout:    5 * time.Second,
				RequestTimeout: 5 * time.Second,
			},
			Registry: RegistryStorage{Driver: DriverFilesystem, Parameters: map[string]any{}},
		},
		Signatures: Signatures{
			MaxBodyBytes:     ClientListLimit,
			MaxPerImage:      64,
			MaxBytesPerImage: 3*MiB - 64<<10,
			ListCacheMiB:     64,
			// Empty rather than nil, so --print-config shows the key.
			ExternalRepositories: []string{},
		},
		Log:  Log{Level: "info", Format: "text", AccessLog: true},
		Auth: Auth{ReloadInterval: 2 * time.Second},
		Registry: Registry{Upstream: Upstream{
			Auth:                  UpstreamAuthSignet,
			ConnectTimeout:        10 * time.Second,
			ResponseHeaderTimeout: 5 * time.Minute,
			CheckTimeout:          10 * time.Second,
			CacheTTL:              30 * time.Second,
			CacheEntries:          100000,
			ManifestCacheBytes:    64 * MiB,
			SweepInterval:         time.Minute,
			SweepBatch:            100,
		}},
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
	if c.Server.HeapFloorMiB < 0 || c.Server.HeapFloorMiB > 1<<20 {
		errs = append(errs, errors.New("server.heapFloorMiB: must be from 0 (off) to 1048576"))
	}
	if c.Signatures.ListCacheMiB < 0 || c.Signatures.ListCacheMiB > 1<<20 {
		errs = append(errs, errors.New("signatures.listCacheMiB: must be from 0 (no cache) to 1048576"))
	}
	if c.Server.HeapHeadroomMiB < 0 || c.Server.HeapHeadroomMiB > 1<<20 {
		errs = append(errs, errors.New("server.heapHeadroomMiB: must be from 0 (the runtime's) to 1048576"))
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
	errs = append(errs, c.Storage.validate()...)
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
	errs = append(errs, c.Registry.Upstream.validate()...)
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

func (u Upstream) validate() []error {
	var errs []error
	if u.URL != "" {
		if err := checkUpstreamURL(u.URL); err != nil {
			errs = append(errs, fmt.Errorf("registry.upstream.url: %w", err))
		}
	}
	if u.Auth != UpstreamAuthSignet && u.Auth != UpstreamAuthPassthrough {
		errs = append(errs, fmt.Errorf("registry.upstream.auth: %q is not signet or passthrough", u.Auth))
	}
	if (u.Username == "") != (u.PasswordFile == "") {
		errs = append(errs, errors.New("registry.upstream: username and passwordFile go together"))
	}
	if u.ConnectTimeout <= 0 || u.ResponseHeaderTimeout <= 0 || u.CheckTimeout <= 0 {
		errs = append(errs, errors.New("registry.upstream: connectTimeout, responseHeaderTimeout and checkTimeout must be positive"))
	}
	if u.CacheTTL < 0 || u.SweepInterval < 0 {
		errs = append(errs, errors.New("registry.upstream: cacheTTL and sweepInterval must not be negative"))
	}
	if u.SweepInterval > 0 && u.SweepInterval < time.Second {
		errs = append(errs, errors.New("registry.upstream.sweepInterval: at least 1s, or 0 to turn the sweep off"))
	}
	if u.CacheEntries < 1 || u.SweepBatch < 1 || u.ManifestCacheBytes < 0 {
		errs = append(errs, errors.New("registry.upstream: cacheEntries and sweepBatch must be at least 1, manifestCacheBytes not negative"))
	}
	return errs
}

// checkUpstreamURL accepts http(s)://host[:port] with nothing else: the
// distribution API always lives at /v2/, and credentials belong in
// username and passwordFile.
func checkUpstreamURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil:
		return err
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("%q: scheme must be http or https", raw)
	case u.Hostname() == "":
		return fmt.Errorf("%q: no host", raw)
	case u.User != nil:
		return fmt.Errorf("%q: put credentials in username and passwordFile", raw)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return fmt.Errorf("%q: no path, query or fragment (the registry API lives at /v2/)", raw)
	}
	return nil
}

func (st Storage) validate() []error {
	var errs []error
	switch st.Backend {
	case BackendBolt:
	case BackendEtcd:
		e := st.Etcd
		if len(e.Endpoints) == 0 {
			errs = append(errs, errors.New("storage.etcd.endpoints: the etcd backend needs at least one endpoint"))
		}
		for _, ep := range e.Endpoints {
			if u, err := url.Parse(ep); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				errs = append(errs, fmt.Errorf("storage.etcd.endpoints: %q is not an http:// or https:// URL", ep))
			}
		}
		if (e.CertFile == "") != (e.KeyFile == "") {
			errs = append(errs, errors.New("storage.etcd: certFile and keyFile go together"))
		}
		if (e.Username == "") != (e.PasswordFile == "") {
			errs = append(errs, errors.New("storage.etcd: username and passwordFile go together"))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.backend: %q is not %s or %s", st.Backend, BackendBolt, BackendEtcd))
	}
	if p := st.Etcd.Prefix; p == "" || !strings.HasSuffix(p, "/") || strings.ContainsFunc(p, func(r rune) bool { return r <= ' ' || r > '~' }) {
		errs = append(errs, fmt.Errorf("storage.etcd.prefix: %q must be printable ASCII without spaces and end in \"/\"", p))
	}
	if st.Etcd.DialTimeout <= 0 || st.Etcd.RequestTimeout <= 0 {
		errs = append(errs, errors.New("storage.etcd: dialTimeout and requestTimeout must be positive"))
	}
	switch st.Registry.Driver {
	case DriverFilesystem:
		if len(st.Registry.Parameters) > 0 {
			errs = append(errs, errors.New("storage.registry.parameters: the filesystem driver takes none (it stores under storage.dataDir/registry)"))
		}
	case DriverS3:
		if b, _ := st.Registry.Parameters["bucket"].(string); b == "" {
			errs = append(errs, errors.New("storage.registry.parameters.bucket: the s3 driver needs a bucket"))
		}
	default:
		errs = append(errs, fmt.Errorf("storage.registry.driver: %q is not %s or %s", st.Registry.Driver, DriverFilesystem, DriverS3))
	}
	return errs
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

// applyEnv walks the sections and applies SIGNET_SECTION_FIELD overrides
// (SIGNET_SECTION_SUB_FIELD inside a nested section), using the YAML key
// names.
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
			if fv := sv.Field(j); fv.Kind() == reflect.Struct {
				// A nested section (registry.upstream):
				// SIGNET_REGISTRY_UPSTREAM_URL and so on.
				for k := 0; k < fv.NumField(); k++ {
					nested := name + "_" + strings.ToUpper(yamlName(fv.Type().Field(k)))
					if val := getenv(nested); val != "" {
						if err := setScalar(fv.Field(k), val); err != nil {
							errs = append(errs, fmt.Errorf("%s: %w", nested, err))
						}
					}
				}
				continue
			}
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
