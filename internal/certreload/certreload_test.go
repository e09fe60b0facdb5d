package certreload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func writePair(t *testing.T, dir, cn string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		DNSNames: []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	cf, kf := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(cf, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cf, kf
}

func cn(t *testing.T, c *tls.Certificate) string {
	t.Helper()
	x, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return x.Subject.CommonName
}

func TestReloadOnChange(t *testing.T) {
	dir := t.TempDir()
	cf, kf := writePair(t, dir, "first")
	r, err := New(cf, kf, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	r.now = func() time.Time { return now }
	if c, _ := r.GetCertificate(nil); cn(t, c) != "first" {
		t.Fatal("initial certificate")
	}
	writePair(t, dir, "second")
	// Within the interval the old pair is still served.
	if c, _ := r.GetCertificate(nil); cn(t, c) != "first" {
		t.Fatal("reloaded before the interval")
	}
	now = now.Add(2 * time.Minute)
	if c, _ := r.GetCertificate(nil); cn(t, c) != "second" {
		t.Fatal("rotation not picked up")
	}
	// A broken key keeps the working pair and reports the error.
	if err := os.WriteFile(kf, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if c, _ := r.GetCertificate(nil); cn(t, c) != "second" {
		t.Fatal("broken rotation replaced the working pair")
	}
	if r.LastError() == nil {
		t.Fatal("broken rotation not reported")
	}
	if r.ServerConfig().MinVersion != tls.VersionTLS12 {
		t.Fatal("TLS below 1.2 allowed")
	}
}

func TestNewFailsOnMissingFiles(t *testing.T) {
	if _, err := New("/nonexistent.crt", "/nonexistent.key", time.Second); err == nil {
		t.Fatal("missing files accepted")
	}
}
