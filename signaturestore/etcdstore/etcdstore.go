// Package etcdstore keeps image signatures, their verification status, the
// manifest-delete journal and the referrers index in etcd, so that several
// Signet replicas can share them. It is the only package that imports the
// etcd client; everything else sees a signaturestore.Store,
// signaturestore.DeleteJournal, signaturestore.ReferrersIndex and
// signaturestore.Walker.
//
// It must not know about HTTP or wire formats, and, like boltstore, it
// validates only what its own layout depends on.
//
// # Key layout (schema version 1)
//
// Every key starts with the configured prefix P (DefaultPrefix is
// "/signet/"). A prefix ends in "/", so installations sharing one etcd
// with prefixes "/a/" and "/ab/" never see each other; prefixes must not
// nest ("/a/" and "/a/b/").
//
//	P schema                                   "1": written when the prefix is first used; a newer value is refused
//	P sig/     IMAGE SEQ                       one signature record (JSON, record.go)
//	P name/    IMAGE <signature name>          SEQ of the signature with that name
//	P hash/    IMAGE <hex sha256>              SEQ of the signature with that type and content
//	P stat/    IMAGE                           {"count","bytes","next"}: the image's totals and next SEQ
//	P journal/ IMAGE                           {"began"}: a manifest delete in progress
//	P ref/s/   IMAGE(repo, subject) <digest>   referrer record {"descriptor","pending"}
//	P ref/r/   IMAGE(repo, referrer)           the referrer's subject digest
//	P ref/p/   IMAGE(repo, referrer)           present while the referrer is pending
//
// IMAGE is esc(repository) " " digest "/", and SEQ is 16 lowercase hex
// digits, so key order is repository, then digest, then insertion order.
// Repository names contain "/" and, for hostile input, anything else, so
// they are escaped: bytes 0x00-0x20 become "!" followed by the byte plus
// 0x21, "!" becomes "!B", and a space ends the name. The space sorts below
// every byte of an escaped name and "!" below every literal byte, so
// "ns/math" < "ns/math-voila" < "ns/math/sub" holds for their keys too and
// no repository's keys are a prefix range of another's (a flat "ns/math"
// prefix would also match "ns/math-voila": SPEC section 6). Names Signet
// accepts never contain either byte, so keys stay readable in etcdctl.
// Digests are validated before they go into a key, so they contain no
// "/" and no space.
//
// # Transactions and revisions
//
// Every write is one etcd transaction, and its nil error means etcd has
// committed it: the client returns only after the request went through
// raft and was applied on a quorum of members (with fsynced WALs), so the
// registry's 201 follows the commit. Put reads the image's stat key, then
// commits "if stat's ModRevision is still the one read, and neither the
// name nor the content hash key exists: write record, name, hash and the
// new stat". Every change to an image's signature set rewrites stat, so the
// compare covers the whole image: name and content uniqueness and the
// per-image bounds are checked atomically with the write. On a conflict
// (another replica wrote the image meanwhile) the transaction's else
// branch returns the current keys and Put retries, at most maxAttempts
// times. Writers in one process take a per-image lock first, so conflicts
// only come from other processes.
//
// Every read is a single range request or read-only transaction, which
// etcd answers at one revision, so a List never sees half of a change.
// Walk and Check page through the store at the revision of their first
// page (WithRev).
//
// # Failures
//
// Each operation runs under RequestTimeout. When etcd is unreachable, has
// no leader or times out, the error wraps signaturestore.ErrUnavailable
// (sent as 503). Such a write may or may not have been applied; retrying it
// is safe, as a duplicate is refused with ErrExists. The client reconnects
// by itself with a short backoff, so writes work again as soon as etcd is
// back. A request over etcd's --max-request-bytes (1.5 MiB by default)
// wraps signaturestore.ErrLimit, and etcd's space quota alarm wraps
// signaturestore.ErrNoSpace.
package etcdstore

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/signet-registry/signet/internal/keylock"
	"github.com/signet-registry/signet/signaturestore"
)

// SchemaVersion is the key layout this package reads and writes.
const SchemaVersion = 1

// Defaults for zero Options fields.
const (
	DefaultPrefix         = "/signet/"
	DefaultDialTimeout    = 5 * time.Second
	DefaultRequestTimeout = 5 * time.Second
)

// maxAttempts bounds the optimistic retries of one write that keeps
// losing to writers in other processes.
const maxAttempts = 16

// maxKeyLen bounds repository and signature names, far below etcd's
// request limit. Handlers validate much tighter rules.
const maxKeyLen = 4096

// maxMsgBytes is the gRPC message size the client allows both ways. The
// server's --max-request-bytes is the limit that matters for writes.
const maxMsgBytes = 64 << 20

var (
	// ErrUnsupportedSchema: the prefix holds a layout written by a newer
	// (or unknown) version of this package.
	ErrUnsupportedSchema = errors.New("unsupported signature store schema")
	// ErrCorrupt: the keys under the prefix do not follow the layout.
	ErrCorrupt = errors.New("signature store corrupt")
)

// Options configure Open.
type Options struct {
	// Endpoints are the etcd client URLs, e.g. https://etcd-1:2379.
	Endpoints []string
	// Prefix is prepended to every key; DefaultPrefix when empty.
	Prefix string
	// TLS, when not nil, is used to connect (CA, client certificate).
	TLS *tls.Config
	// Username and Password authenticate to etcd when Username is set.
	Username string
	Password string
	// DialTimeout bounds connecting; DefaultDialTimeout when zero.
	DialTimeout time.Duration
	// RequestTimeout bounds every operation, retries included;
	// DefaultRequestTimeout when zero.
	RequestTimeout time.Duration
	// Limits bound what one image may hold; a zero field means no limit.
	Limits signaturestore.Limits
	// Observer, when not nil, is called once per committed write.
	Observer signaturestore.CommitObserver
	// SpoolDir holds the temporary file Snapshot builds; the system's
	// temporary directory when empty.
	SpoolDir string
}

// Store is a signaturestore.Store, DeleteJournal, ReferrersIndex and
// Walker on etcd. It is safe for concurrent use, also by several
// processes sharing one prefix.
type Store struct {
	cli      *clientv3.Client
	k        keys
	limits   signaturestore.Limits
	observer signaturestore.CommitObserver
	timeout  time.Duration
	spoolDir string
	locks    *keylock.Locks

	// mu guards closed. Operations hold it shared for their whole run,
	// so Close waits for them: an operation either completes (and, for
	// a write, is committed) or finds the store closed and does nothing.
	mu     sync.RWMutex
	closed bool
}

var (
	_ signaturestore.Store          = (*Store)(nil)
	_ signaturestore.DeleteJournal  = (*Store)(nil)
	_ signaturestore.ReferrersIndex = (*Store)(nil)
	_ signaturestore.Walker         = (*Store)(nil)
)

// Open connects to etcd, checks or writes the schema version under the
// prefix, and returns the store. It fails when etcd cannot be reached
// within the dial and request timeouts.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if len(opts.Endpoints) == 0 {
		return nil, errors.New("open etcd signature store: no endpoints")
	}
	prefix := opts.Prefix
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if err := validatePrefix(prefix); err != nil {
		return nil, fmt.Errorf("open etcd signature store: %w", err)
	}
	dial := opts.DialTimeout
	if dial <= 0 {
		dial = DefaultDialTimeout
	}
	timeout := opts.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:          opts.Endpoints,
		DialTimeout:        dial,
		TLS:                opts.TLS,
		Username:           opts.Username,
		Password:           opts.Password,
		MaxCallSendMsgSize: maxMsgBytes,
		MaxCallRecvMsgSize: maxMsgBytes,
		// The client's own zap logging would bypass Signet's log; its
		// errors reach callers as returned errors.
		Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{
			// gRPC's default reconnect backoff grows to two minutes;
			// after an etcd outage writes must work again within
			// seconds of etcd's return.
			grpc.WithConnectParams(grpc.ConnectParams{
				Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
				MinConnectTimeout: dial,
			}),
		},
	})
	if err != nil {
		return nil, fmt.Errorf("open etcd signature store: %w", classify(ctx, err))
	}
	s := &Store{
		cli:      cli,
		k:        keys{prefix: prefix},
		limits:   opts.Limits,
		observer: opts.Observer,
		timeout:  timeout,
		spoolDir: opts.SpoolDir,
		locks:    keylock.New(256),
	}
	initCtx, cancel := context.WithTimeout(ctx, dial+timeout)
	defer cancel()
	if err := s.initSchema(initCtx); err != nil {
		_ = cli.Close()
		return nil, fmt.Errorf("open etcd signature store at %v prefix %q: %w", opts.Endpoints, prefix, classify(ctx, err))
	}
	return s, nil
}

// initSchema writes the schema key under an empty prefix, or checks the one
// there. Only an empty prefix is adopted.
func (s *Store) initSchema(ctx context.Context) error {
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(s.k.prefix).WithPrefix(), "=", 0)).
		Then(clientv3.OpPut(s.k.schema(), strconv.Itoa(SchemaVersion))).
		Else(clientv3.OpGet(s.k.schema())).
		Commit()
	if err != nil {
		return err
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return fmt.Errorf("%w: no %q key but other keys under the prefix; not a signet signature store", ErrCorrupt, s.k.schema())
	}
	return checkSchema(string(kvs[0].Value))
}

func checkSchema(v string) error {
	version, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%w: schema version %q", ErrCorrupt, v)
	}
	switch {
	case version > SchemaVersion:
		return fmt.Errorf("%w: store has schema version %d, this build of signet supports version %d; upgrade signet", ErrUnsupportedSchema, version, SchemaVersion)
	case version != SchemaVersion:
		return fmt.Errorf("%w: store has schema version %d, this build of signet supports version %d", ErrUnsupportedSchema, version, SchemaVersion)
	}
	return nil
}

// Prefix is the key prefix the store uses.
func (s *Store) Prefix() string { return s.k.prefix }

// Close waits for running operations, then closes the connection. A
// second Close returns ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("close etcd signature store: %w", signaturestore.ErrClosed)
	}
	s.closed = true
	if err := s.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close etcd signature store: %w", err)
	}
	return nil
}

// run runs fn while the store is open, under RequestTimeout, and turns
// etcd's errors into domain errors.
func (s *Store) run(ctx context.Context, fn func(ctx context.Context) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return signaturestore.ErrClosed
	}
	opCtx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	return classify(ctx, fn(opCtx))
}

// errContention: a write lost to other writers maxAttempts times.
var errContention = errors.New("too many concurrent writers on one image")

// classify maps an error from the etcd client to a domain error. parent is
// the caller's context: its own cancellation stays a context error.
func classify(parent context.Context, err error) error {
	if err == nil {
		return nil
	}
	for _, domain := range []error{
		signaturestore.ErrExists, signaturestore.ErrNotFound, signaturestore.ErrLimit,
		signaturestore.ErrInvalid, signaturestore.ErrClosed, signaturestore.ErrUnavailable,
		signaturestore.ErrNoSpace, ErrCorrupt, ErrUnsupportedSchema,
	} {
		if errors.Is(err, domain) {
			return err
		}
	}
	if perr := parent.Err(); perr != nil {
		return fmt.Errorf("%w: %v", perr, err)
	}
	switch {
	case errors.Is(err, errContention):
		return fmt.Errorf("%w: %w", signaturestore.ErrUnavailable, err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("%w: larger than etcd's --max-request-bytes: %v", signaturestore.ErrLimit, err)
	case errors.Is(err, rpctypes.ErrNoSpace):
		return fmt.Errorf("%w: etcd space quota exceeded (alarm NOSPACE): %v", signaturestore.ErrNoSpace, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		// The caller's context is alive, so this is our own deadline.
		return fmt.Errorf("%w: etcd did not answer in time: %v", signaturestore.ErrUnavailable, err)
	}
	code := codes.Unknown
	var etcdErr rpctypes.EtcdError
	if errors.As(err, &etcdErr) {
		code = etcdErr.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	switch code {
	case codes.Unavailable, codes.DeadlineExceeded, codes.Canceled, codes.Aborted:
		return fmt.Errorf("%w: %v", signaturestore.ErrUnavailable, err)
	case codes.ResourceExhausted:
		// etcd's gRPC server refuses a message over --max-request-bytes
		// plus its overhead before etcd itself looks at it. (The
		// client's own limit, maxMsgBytes, is far above that.)
		if strings.Contains(err.Error(), "larger than max") {
			return fmt.Errorf("%w: larger than etcd's --max-request-bytes: %v", signaturestore.ErrLimit, err)
		}
	}
	return fmt.Errorf("etcd: %w", err)
}

// retryPause spreads out retries after a conflict with another process.
func retryPause(ctx context.Context, attempt int) error {
	d := time.Duration(rand.IntN(5*(attempt+1))+1) * time.Millisecond
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// observe reports one committed write.
func (s *Store) observe(start time.Time) {
	if s.observer != nil {
		s.observer.ObserveCommit(time.Since(start), 1)
	}
}

func validateKey(key signaturestore.ImageKey) error {
	if key.Repository == "" {
		return fmt.Errorf("%w: empty repository", signaturestore.ErrInvalid)
	}
	if len(key.Repository) > maxKeyLen {
		return fmt.Errorf("%w: repository longer than %d bytes", signaturestore.ErrInvalid, maxKeyLen)
	}
	if err := key.Digest.Validate(); err != nil {
		return fmt.Errorf("%w: digest %q: %v", signaturestore.ErrInvalid, key.Digest, err)
	}
	return nil
}

func validateName(name string) error {
	if name == "" {
		return fmt.Errorf("%w: empty name", signaturestore.ErrInvalid)
	}
	if len(name) > maxKeyLen {
		return fmt.Errorf("%w: name longer than %d bytes", signaturestore.ErrInvalid, maxKeyLen)
	}
	return nil
}

func validateReferrer(repository string, dgst digest.Digest) error {
	return validateKey(signaturestore.ImageKey{Repository: repository, Digest: dgst})
}
