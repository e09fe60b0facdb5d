package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/signet-registry/signet/config"
	"github.com/signet-registry/signet/internal/etcdtest"
	"github.com/signet-registry/signet/signaturestore"
	"github.com/signet-registry/signet/signaturestore/etcdstore"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate into dir and returns their paths.
type testPKI struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newTestPKI(t *testing.T, dir string) testPKI {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "signet test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kb, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kb)
	}
	p := testPKI{ca: write("ca.pem", "CERTIFICATE", caDER)}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestEtcdOverTLS: storage.etcd's caFile, certFile and keyFile reach a
// real etcd that serves TLS and requires client certificates; without the
// client certificate, or with another CA, the store does not open.
func TestEtcdOverTLS(t *testing.T) {
	dir := t.TempDir()
	pki := newTestPKI(t, dir)
	srv := etcdtest.Start(t, etcdtest.Options{TLS: &etcdtest.TLSFiles{
		CertFile: pki.serverCert, KeyFile: pki.serverKey, CAFile: pki.ca,
		ClientCertFile: pki.clientCert, ClientKeyFile: pki.clientKey,
	}})
	base := config.Default().Storage.Etcd
	base.Endpoints = srv.Endpoints()
	base.DialTimeout, base.RequestTimeout = time.Second, time.Second

	good := base
	good.CAFile, good.CertFile, good.KeyFile = pki.ca, pki.clientCert, pki.clientKey
	opts, err := etcdOptions(good)
	if err != nil {
		t.Fatal(err)
	}
	s, err := etcdstore.Open(t.Context(), opts)
	if err != nil {
		t.Fatalf("Open over TLS: %v", err)
	}
	defer s.Close()
	k := signaturestore.ImageKey{Repository: "ns/app", Digest: digest.FromString("x")}
	if err := s.Put(t.Context(), k, signaturestore.Signature{Name: k.Digest.String() + "@" + "0123456789abcdef0123456789abcdef", Type: "atomic", Content: []byte("c")}); err != nil {
		t.Fatalf("Put over TLS: %v", err)
	}

	other := newTestPKI(t, t.TempDir())
	for name, c := range map[string]config.Etcd{
		"no client certificate": func() config.Etcd { c := base; c.CAFile = pki.ca; return c }(),
		"another CA":            func() config.Etcd { c := good; c.CAFile = other.ca; return c }(),
	} {
		opts, err := etcdOptions(c)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		if s, err := etcdstore.Open(ctx, opts); err == nil {
			_ = s.Close()
			t.Errorf("%s: Open succeeded", name)
		}
		cancel()
	}
}

func TestEtcdOptionsFiles(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default().Storage.Etcd
	c.Username, c.PasswordFile = "signet", pw
	opts, err := etcdOptions(c)
	if err != nil || opts.Username != "signet" || opts.Password != "s3cret" || opts.TLS != nil {
		t.Fatalf("etcdOptions = %+v, %v", opts, err)
	}
	for name, c := range map[string]config.Etcd{
		"missing password file": {PasswordFile: filepath.Join(dir, "none")},
		"missing CA":            {CAFile: filepath.Join(dir, "none")},
		"CA not PEM":            {CAFile: pw},
		"bad key pair":          {CertFile: pw, KeyFile: pw},
	} {
		if _, err := etcdOptions(c); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestEtcdWithPassword: storage.etcd's username and passwordFile log in to
// an etcd with authentication enabled; a wrong password does not.
func TestEtcdWithPassword(t *testing.T) {
	srv := etcdtest.Start(t, etcdtest.Options{})
	admin, err := clientv3.New(clientv3.Config{Endpoints: srv.Endpoints(), DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := t.Context()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.UserAdd(ctx, "signet", "signet-pw"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "signet"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "signet", "/signet/", clientv3.GetPrefixRangeEnd("/signet/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserGrantRole(ctx, "signet", "signet"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	c := config.Default().Storage.Etcd
	c.Endpoints = srv.Endpoints()
	c.DialTimeout, c.RequestTimeout = time.Second, time.Second
	c.Username = "signet"
	for _, tc := range []struct {
		password string
		ok       bool
	}{{"signet-pw\n", true}, {"wrong\n", false}} {
		c.PasswordFile = filepath.Join(dir, "pw")
		if err := os.WriteFile(c.PasswordFile, []byte(tc.password), 0o600); err != nil {
			t.Fatal(err)
		}
		opts, err := etcdOptions(c)
		if err != nil {
			t.Fatal(err)
		}
		s, err := etcdstore.Open(ctx, opts)
		if (err == nil) != tc.ok {
			t.Fatalf("Open with password %q: %v", tc.password, err)
		}
		if err == nil {
			if _, err := s.Count(ctx); err != nil {
				t.Fatalf("Count as signet: %v", err)
			}
			_ = s.Close()
		}
	}
}
