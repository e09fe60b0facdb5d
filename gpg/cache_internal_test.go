package gpg

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// fakeClock is a settable Options.Now.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func newTestMechanism(t testing.TB, clock func() time.Time, cacheSize int, keyFiles ...string) *Mechanism {
	t.Helper()
	var blobs [][]byte
	for _, f := range keyFiles {
		blobs = append(blobs, readTestdata(t, f))
	}
	m, err := NewMechanismWithOptions(Options{Now: clock, CacheSize: cacheSize}, blobs...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestCacheReevaluatesExpiry: a cached success must not outlive the key or
// the signature it depends on.
func TestCacheReevaluatesExpiry(t *testing.T) {
	tests := []struct {
		name      string
		key, sig  string
		validAt   time.Time
		expiredAt time.Time
		want      error
	}{
		{"signature expiry", "ed25519.pub.gpg", "expired-signature.sig",
			time.Date(2022, 1, 1, 12, 0, 0, 0, time.UTC), time.Date(2022, 1, 3, 0, 0, 0, 0, time.UTC), ErrSignatureExpired},
		{"key expiry", "expired-key.pub.gpg", "expired-key.sig",
			time.Date(2020, 1, 1, 2, 0, 0, 0, time.UTC), time.Date(2020, 1, 3, 0, 0, 0, 0, time.UTC), ErrKeyExpired},
		{"signature from the future is not yet valid", "ed25519.pub.gpg", "ed25519.sig",
			time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 12, 31, 0, 0, 0, 0, time.UTC), ErrSignatureExpired},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{t: tc.validAt}
			m := newTestMechanism(t, clock.now, 0, tc.key)
			sig := readTestdata(t, tc.sig)
			for i := range 2 { // second round is served from the cache
				if _, err := m.VerifyDetailed(sig); err != nil {
					t.Fatalf("round %d at %v: %v", i, clock.t, err)
				}
			}
			if m.cache.len() != 1 {
				t.Fatalf("cache holds %d entries, want 1", m.cache.len())
			}
			clock.t = tc.expiredAt
			if _, err := m.VerifyDetailed(sig); !errors.Is(err, tc.want) {
				t.Fatalf("after expiry: error = %v, want %v", err, tc.want)
			}
			if m.cache.len() != 0 {
				t.Errorf("stale entry kept: %d entries", m.cache.len())
			}
		})
	}
}

func TestCacheBoundsAndCopies(t *testing.T) {
	now := func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }
	m := newTestMechanism(t, now, 2, "rsa.pub.gpg", "ed25519.pub.gpg", "subkey.pub.gpg")
	for _, f := range []string{"rsa.sig", "ed25519.sig", "subkey.sig", "rsa-zlib.sig"} {
		if _, err := m.VerifyDetailed(readTestdata(t, f)); err != nil {
			t.Fatal(err)
		}
	}
	if n := m.cache.len(); n != 2 {
		t.Errorf("cache size = %d, want 2", n)
	}
	// Failures are not cached.
	for _, f := range []string{"expired-signature.sig", "two-signatures.sig", "literal.sig"} {
		if _, err := m.VerifyDetailed(readTestdata(t, f)); err == nil {
			t.Fatalf("%s verified", f)
		}
	}
	if n := m.cache.len(); n != 2 {
		t.Errorf("cache size after failures = %d, want 2", n)
	}
	// A caller mutating returned contents must not corrupt the cache.
	sig := readTestdata(t, "rsa-zlib.sig")
	r1, err := m.VerifyDetailed(sig)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(r1.Contents)
	clear(r1.Contents)
	r2, err := m.VerifyDetailed(sig)
	if err != nil || !bytes.Equal(r2.Contents, want) {
		t.Fatalf("cached contents corrupted: %q, %v", r2.Contents, err)
	}
	if off := newTestMechanism(t, now, -1, "rsa.pub.gpg"); off.cache != nil {
		t.Error("negative CacheSize did not disable the cache")
	}
}

// TestCacheSpeedup checks the cache requirement (a repeated verification at
// least 10x faster than the first); BenchmarkVerify has the precise numbers.
func TestCacheSpeedup(t *testing.T) {
	if testing.Short() {
		t.Skip("timing test")
	}
	now := func() time.Time { return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC) }
	sig := readTestdata(t, "rsa.sig")
	measure := func(m *Mechanism) time.Duration {
		const n = 200
		start := time.Now()
		for range n {
			if _, err := m.VerifyDetailed(sig); err != nil {
				t.Fatal(err)
			}
		}
		return time.Since(start) / n
	}
	uncached := measure(newTestMechanism(t, now, -1, "rsa.pub.gpg"))
	cached := measure(newTestMechanism(t, now, 0, "rsa.pub.gpg"))
	t.Logf("uncached %v, cached %v per verification", uncached, cached)
	if cached*10 > uncached {
		t.Errorf("cached verification %v is not 10x faster than uncached %v", cached, uncached)
	}
}
